"""Datasets and transforms of the image-classification suites.

The registry `DATASETS` is data: where each dataset lives, which columns hold image and label, how many classes
it has, and how its train / val / test splits are made (the NEAT and FourierFT papers' rules: a given validation
split, else 10% of train held out; DTD: every image pooled, 20% test, then 10% of the rest for validation).
Transforms follow the model's timm data config (input size, mean/std, interpolation, crop_pct) and are built
with albumentations.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
from neat_core.remote import hub_reachable, offline_mode  # the one Hub probe (benchmarks import it from here too)
from torch.utils.data import Dataset, get_worker_info

VAL_FRACTION = 0.1   # held out of train when a dataset has no validation split (the paper's setup)
SPLIT_SEED = 42      # fixed seed of every generated split
DATA_DIR_HELP = "an ImageFolder tree (train/, test/, optional val/) or a datasets.save_to_disk folder"


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and how it splits.

    source:     "hub" (datasets.load_dataset(hub_id, revision=...)) or "digits" (sklearn's 8x8 digits, offline).
    num_classes: the label count (a plan's head size before any data is loaded; training uses the data's).
    val:        the validation split's name, or None: hold out VAL_FRACTION of train with SPLIT_SEED.
    pooled:     every split of the source pooled, test_fraction of it held out as test (SPLIT_SEED), then
                VAL_FRACTION of the rest as validation (FourierFT's DTD rule, Chaos96/fourierft
                experiments/ViT/exec.py; seeded here).
    test_id:    a second Hub repository that holds the test split (some mirrors ship train and test apart).
    hflip:      whether horizontal flips keep the label (not for digits).
    classes:    digits only: which digits, relabelled 0..n-1 in this order.
    test_fraction: digits and pooled datasets: share of the images kept for test (SPLIT_SEED; digits stratified).
    upsample:   digits only: each 8x8 pixel becomes an upsample x upsample block.
    """

    name: str
    title: str
    num_classes: int
    hub_id: str = ""
    revision: str = "main"
    image_key: str = "image"
    label_key: str = "label"
    train: str = "train"
    val: str | None = None
    test: str = "test"
    test_id: str | None = None
    pooled: bool = False
    source: str = "hub"
    hflip: bool = True
    classes: tuple[int, ...] = ()
    test_fraction: float = 0.3
    upsample: int = 2

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The paper's eight datasets (parquet mirrors on the Hub; pin `revision` to a commit for exact reruns)
# and the two halves of the offline digits smoke suite.
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("pets", "OxfordPets", 37, "timm/oxford-iiit-pet"),
    DatasetSpec("cifar10", "CIFAR10", 10, "uoft-cs/cifar10", image_key="img"),
    DatasetSpec("dtd", "DTD", 47, "tanganke/dtd", pooled=True, test_fraction=0.2),   # 5,640 images in all
    DatasetSpec("eurosat", "EuroSAT", 10, "timm/eurosat-rgb", val="validation"),
    DatasetSpec("resisc45", "RESISC45", 45, "timm/resisc45", val="validation"),
    DatasetSpec("cars", "StanfordCars", 196, "tanganke/stanford_cars"),
    DatasetSpec("fgvc", "FGVC", 100, "Multimodal-Fatima/FGVC_Aircraft_train",
                test_id="Multimodal-Fatima/FGVC_Aircraft_test"),
    DatasetSpec("cifar100", "CIFAR100", 100, "uoft-cs/cifar100", image_key="img", label_key="fine_label"),
    DatasetSpec("digits04", "Digits 0-4", 5, source="digits", hflip=False, classes=(0, 1, 2, 3, 4)),
    DatasetSpec("digits59", "Digits 5-9", 5, source="digits", hflip=False, classes=(5, 6, 7, 8, 9)),
]}


class DataUnavailableError(RuntimeError):
    """A dataset can be neither downloaded nor found locally, or the local copy does not fit its rule."""


@dataclass
class Splits:
    """Train / val / test `datasets.Dataset`s with normalised columns `image` and `label`."""

    train: Any
    val: Any
    test: Any
    num_classes: int
    fingerprint: str
    in_memory: bool = False   # generated in memory (digits): decoded images are cheap to keep between epochs


def source_lines(names: list[str], data_dir: str | None) -> list[str]:
    """Where each dataset of a plan comes from, for the dry run: the Hub id @ revision (or the local folder), and the
    splits used."""
    lines = ["", "| dataset | source | splits |", "|---|---|---|"]
    for name in dict.fromkeys(names):
        spec = get_spec(name)
        where = (f"--data-dir {data_dir}" if data_dir and spec.source == "hub" else
                 "sklearn's digits (offline)" if spec.source == "digits" else f"{spec.hub_id} @ {spec.revision}")
        splits = "pooled, then split" if spec.pooled else ", ".join(s for s in (spec.train, spec.val, spec.test) if s)
        lines.append(f"| {name} | {where} | {splits} |")
    return lines


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}.")
    return DATASETS[name]


# --- loading ------------------------------------------------------------------------------------------
def unavailable(spec: DatasetSpec, why: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"Dataset {spec.name!r} ({spec.hub_id}) is not available: {why}. Download it where the Hub is "
        f"reachable and pass --data-dir DIR ({DATA_DIR_HELP}; DIR may also hold one such folder per dataset "
        f"name, e.g. DIR/{spec.name}).")


def _local_folder(data_dir: str | os.PathLike, spec: DatasetSpec) -> Path:
    root = Path(data_dir)
    return root / spec.name if (root / spec.name).is_dir() else root


def _load_local(folder: Path) -> Any:
    import datasets

    if not folder.is_dir():
        raise DataUnavailableError(f"--data-dir {folder} is not a folder; expected {DATA_DIR_HELP}.")
    if (folder / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(folder))
    if not any(p.is_dir() for p in folder.iterdir()):
        raise DataUnavailableError(f"{folder} holds no split or class folders; expected {DATA_DIR_HELP}.")
    return datasets.load_dataset("imagefolder", data_dir=str(folder))


def _load_hub(spec: DatasetSpec) -> dict[str, Any]:
    import datasets

    if not offline_mode() and not hub_reachable():
        raise unavailable(spec, "the Hugging Face Hub cannot be reached (no network) and no --data-dir was given")
    try:
        loaded = dict(datasets.load_dataset(spec.hub_id, revision=spec.revision))
        if spec.test_id:
            loaded[spec.test] = datasets.load_dataset(spec.test_id, revision=spec.revision, split=spec.test)
    except (ConnectionError, OSError) as err:  # offline mode without a cached copy, network failures
        why = "HF_HUB_OFFLINE is set and there is no cached copy" if offline_mode() else type(err).__name__
        raise unavailable(spec, why) from None
    return loaded


@functools.lru_cache(maxsize=4)
def _digits(spec: DatasetSpec) -> dict[str, Any]:
    """sklearn's 8x8 digits of `spec.classes`, upsampled to RGB uint8 images and split stratified."""
    import datasets
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    keep = np.isin(digits.target, spec.classes)
    images = (digits.images[keep] * (255 / 16)).round().astype(np.uint8)
    images = np.repeat(np.repeat(images, spec.upsample, axis=1), spec.upsample, axis=2)[..., None].repeat(3, axis=-1)
    labels = np.searchsorted(np.array(spec.classes), digits.target[keep])
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[str(c) for c in spec.classes])})
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=spec.test_fraction,
                                           stratify=labels, random_state=SPLIT_SEED)
    return {split: datasets.Dataset.from_dict({"image": list(images[idx]), "label": labels[idx].tolist()},
                                              features=features)
            for split, idx in (("train", idx_train), ("test", idx_test))}


def _normalise_columns(ds: Any, spec: DatasetSpec) -> Any:
    """Rename the spec's image / label columns to `image` / `label` (local copies may already use those)."""
    for key, std in ((spec.image_key, "image"), (spec.label_key, "label")):
        if std not in ds.column_names and key in ds.column_names:
            ds = ds.rename_column(key, std)
    missing = {"image", "label"} - set(ds.column_names)
    if missing:
        raise DataUnavailableError(f"Dataset {spec.name!r} has columns {ds.column_names}; expected {spec.image_key!r} "
                         f"and {spec.label_key!r} (or image / label).")
    return ds.select_columns(["image", "label"])


def holdout(train: Any, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> tuple[Any, Any]:
    """Split `fraction` of `train` off as validation with a fixed seed."""
    parts = train.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]


def _pick(loaded: dict[str, Any], names: tuple[str | None, ...], spec: DatasetSpec, role: str) -> Any:
    for name in names:
        if name and name in loaded:
            return loaded[name]
    if role == "val":
        return None
    raise DataUnavailableError(f"Dataset {spec.name!r} has splits {sorted(loaded)}; no {role} split "
                     f"(looked for {[n for n in names if n]}).")


def pooled_split(loaded: dict[str, Any], spec: DatasetSpec) -> tuple[Any, Any]:
    """(train + val pool, test): every split of `loaded` concatenated (in split-name order), then
    spec.test_fraction of it held out as test with SPLIT_SEED."""
    import datasets

    if not loaded:
        raise DataUnavailableError(f"Dataset {spec.name!r} has no splits to pool.")
    parts = [_normalise_columns(loaded[name], spec) for name in sorted(loaded)]
    labels = parts[0].features["label"]
    pool = datasets.concatenate_datasets([p.cast_column("label", labels) for p in parts])
    return holdout(pool, fraction=spec.test_fraction)


def load_splits(name: str, data_dir: str | os.PathLike | None = None, accept_subset: bool = False) -> Splits:
    """Train / val / test of dataset `name` by its registry rule, from `data_dir` when given, else the source."""
    spec = get_spec(name)
    if spec.source == "digits":
        loaded = _digits(spec)
    elif data_dir is not None:
        loaded = dict(_load_local(_local_folder(data_dir, spec)))
    else:
        loaded = _load_hub(spec)
    if spec.pooled:
        train, test = pooled_split(loaded, spec)
        val = None
    else:
        train = _normalise_columns(_pick(loaded, (spec.train,), spec, "train"), spec)
        test = _normalise_columns(_pick(loaded, (spec.test,), spec, "test"), spec)
        val = _pick(loaded, (spec.val, "validation", "val"), spec, "val")
    if val is None:
        train, val = holdout(train)
    else:
        val = _normalise_columns(val, spec)
    label = train.features["label"]
    num_classes = getattr(label, "num_classes", None) or int(max(train["label"])) + 1
    return Splits(train, val, test, num_classes, train._fingerprint, in_memory=spec.source == "digits")


# --- transforms -----------------------------------------------------------------------------------------
_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def build_transform(data_config: dict[str, Any], train: bool, hflip: bool = True,
                    crop_scale: tuple[float, float] = (0.08, 1.0), seed: int | None = None) -> A.Compose:
    """albumentations pipeline from a timm data config: random resized crop (+ flip) for training,
    resize to size / crop_pct and center crop for evaluation; then normalise and make a CHW tensor. Shrinking
    uses pixel-area averaging (as PIL's antialiased resize that torchvision and timm apply to PIL images).
    `seed` fixes the random augmentations (albumentations ignores torch's and numpy's global seeds)."""
    _, height, width = data_config["input_size"]
    interpolation = _INTERPOLATION.get(data_config.get("interpolation", "bilinear"), cv2.INTER_LINEAR)
    if train:
        steps = [A.RandomResizedCrop(size=(height, width), scale=tuple(crop_scale), interpolation=interpolation,
                                     area_for_downscale="image")]
        steps += [A.HorizontalFlip(p=0.5)] if hflip else []
    else:
        resize = int(min(height, width) / data_config.get("crop_pct", 1.0))
        steps = [A.SmallestMaxSize(max_size=resize, interpolation=interpolation, area_for_downscale="image"),
                 A.CenterCrop(height=height, width=width)]
    steps += [A.Normalize(mean=data_config["mean"], std=data_config["std"], max_pixel_value=255.0),
              A.ToTensorV2()]
    return A.Compose(steps, seed=seed)


class ImageDataset(Dataset):
    """A `datasets.Dataset` with `image` / `label` columns, decoded to RGB and transformed per item.

    In a DataLoader worker the transform is reseeded once with the worker's seed (torch derives it from the
    loader's generator and the worker id), so workers draw different but reproducible augmentations.
    `keep_decoded` keeps each decoded image (for small in-memory sets: decoding is most of an epoch's work).
    """

    def __init__(self, data: Any, transform: A.Compose, keep_decoded: bool = False) -> None:
        self.data = data
        self.transform = transform
        self._worker: int | None = None
        self._decoded: dict[int, tuple[np.ndarray, int]] | None = {} if keep_decoded else None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        worker = get_worker_info()
        if worker is not None and worker.id != self._worker:
            self.transform.set_random_seed(worker.seed % 2**32)
            self._worker = worker.id
        index = int(index)
        if self._decoded is not None and index in self._decoded:
            image, label = self._decoded[index]
        else:
            row = self.data[index]
            image, label = np.asarray(row["image"].convert("RGB")), int(row["label"])
            if self._decoded is not None:
                self._decoded[index] = (image, label)
        return self.transform(image=image)["image"], label
