"""Datasets and transforms of the image-classification suites.

The registry `DATASETS` is data: where each dataset lives (a Hub repository at a commit, with where that commit was
found; core.sources), which columns hold image and label, the rows and classes its card or paper gives (checked on
every load, from the Hub or --data-dir alike, before any model loads), and how its train / val / test splits are
made: the repository's own validation split where it has one, else VAL_FRACTION of train held out with SPLIT_SEED
(the papers' code holds out 10% of train unseeded; here the split is the same on every run). Only the splits used
are loaded. Transforms follow the model's timm data config (input size, mean/std, interpolation, crop_pct) and are
built with albumentations.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
from neat_core.remote import hub_reachable, offline_mode  # neat_core.remote: the one Hub probe of every suite
from torch.utils.data import Dataset, get_worker_info

from ..core.sources import Expected, Pin, Sources, load_hub_dataset, shown_revision, verify

VAL_FRACTION = 0.1   # held out of train when a dataset has no validation split (the paper's setup)
SPLIT_SEED = 42      # fixed seed of every generated split
DATA_DIR_HELP = "an ImageFolder tree (train/, test/, optional val/) or a datasets.save_to_disk folder"
HELD_OUT = (f"train: {100 - 100 * VAL_FRACTION:.0f}%, validation: the other {100 * VAL_FRACTION:.0f}% of train "
            f"(seed {SPLIT_SEED}; the papers' code holds out 10% unseeded), test")
GIVEN = "the repository's train / validation / test"
NOT_LATEST = "the latest main not verified"


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from, what it holds and how it splits.

    source:     "hub" (datasets.load_dataset(pin.repo, revision=..., split=the splits used)) or "digits" (sklearn's
                8x8 digits, offline).
    pin:        the Hub repository at a commit; test_pin: a second repository that holds the test split (some mirrors
                ship train and test apart).
    expected:   rows per split and classes from the card or paper, cited (core.sources.verify).
    num_classes: the label count (a plan's head size before any data is loaded; training uses the data's).
    val:        the validation split's name, or None: hold out VAL_FRACTION of train with SPLIT_SEED.
    splits:     how the splits are used, in words (the dry run's table).
    hflip:      whether horizontal flips keep the label (not for digits).
    classes:    digits only: which digits, relabelled 0..n-1 in this order.
    test_fraction: digits only: share of the images kept for test (SPLIT_SEED, stratified).
    upsample:   digits only: each 8x8 pixel becomes an upsample x upsample block.
    """

    name: str
    title: str
    num_classes: int
    pin: Pin | None = None
    expected: Expected | None = None
    image_key: str = "image"
    label_key: str = "label"
    train: str = "train"
    val: str | None = None
    test: str = "test"
    test_pin: Pin | None = None
    splits: str = HELD_OUT
    source: str = "hub"
    hflip: bool = True
    classes: tuple[int, ...] = ()
    test_fraction: float = 0.3
    upsample: int = 2

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def used(self) -> list[str]:
        """The splits loaded from the main repository (the test split from test_pin when there is one)."""
        return [s for s in (self.train, self.val, None if self.test_pin else self.test) if s]


def _hub(repo: str, revision: str, where: str) -> Pin:
    return Pin(repo, revision, f"{where}; {NOT_LATEST}")


# The paper's eight datasets (parquet mirrors on the Hub, each at a commit) and the two halves of the offline digits
# smoke suite. Counts: from each card, or the source named beside them.
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("pets", "OxfordPets", 37, _hub(
        "timm/oxford-iiit-pet", "10b688881011725fa2fa3d856a47536c9a7e6968",
        "its commits page ('Upload dataset', Dec 23 2023; a later README commit is "
        "0b061922a132175141736196aef1136ae3c64c35)"),
        Expected({"train": 3680, "test": 3669}, 37, "TFDS oxford_iiit_pet catalog (train 3,680 / test 3,669); "
                 "mmpretrain OxfordIIITPet (trainval 3,680 / test 3,669, 37 categories)", id_key="image_id")),
    DatasetSpec("cifar10", "CIFAR10", 10, _hub(
        "uoft-cs/cifar10", "0b2714987fa478483af9968de7c934580d0bb9a2",
        "its tree page (main's head, 'Convert dataset to Parquet (#6)'); the same commit is pinned by "
        "embeddings-benchmark/mteb mteb/tasks/Image/ImageClassification/eng/CIFAR.py@9dd0bfb27cd57122e5277d548f5d626d08145628"),
        Expected({"train": 50000, "test": 10000}, 10, "uoft-cs/cifar10 card; TFDS Hugging Face community catalog "
                 "cifar10"), image_key="img"),
    DatasetSpec("dtd", "DTD", 47, _hub(
        "tanganke/dtd", "d2afa97d9f335b1a6b3b09c637aef667f98f966e",
        "its README page (main's head, 'Convert dataset to Parquet (#1)'); the same commit is pinned by "
        "embeddings-benchmark/mteb DTDClassification.py@a94c1e5c4fd1366fe8a06f122f045b07c4d96436"),
        Expected({"train": 3760, "test": 1880}, 47, "tanganke/dtd card (dataset_info; the same at cd52f56); DTD's partition 1 "
                 "train+val / test hold 3,760 / 1,880 (mmpretrain DTD), but the card does not say which partition "
                 "this copy is"),
        splits="one official partition, never pooled: train (3,760, the size of partition 1's train+val; not "
               f"confirmed by the card): {100 - 100 * VAL_FRACTION:.0f}%, validation: the other "
               f"{100 * VAL_FRACTION:.0f}% (seed {SPLIT_SEED}); test 1,880. FourierFT pooled all 5,640 images, 80/20 "
               "then 90/10, unseeded"),
    DatasetSpec("eurosat", "EuroSAT", 10, _hub(
        "timm/eurosat-rgb", "b4e28552cd5f3932b6abc37eb20d3e84901ad728",
        "its README commits page (the latest listed, Jan 7; the data was uploaded in "
        "435287cde10a365a27b0f2e183dc96aa6c28f302)"),
        Expected({"train": 16200, "validation": 5400, "test": 5400}, 10, "timm/eurosat-rgb card dataset_info "
                 "(splits of google-research remote_sensing_representations)", id_key="image_id"),
        val="validation", splits=GIVEN),
    DatasetSpec("resisc45", "RESISC45", 45, _hub(
        "timm/resisc45", "fe12fc5f1b7606543b0355eda392f1ddc54625c6", "its tree page (main's head when seen)"),
        Expected({"train": 18900, "validation": 6300, "test": 6300}, 45, "FourierFT paper (arXiv 2405.03003) Table "
                 "8; the timm/resisc45 viewer (18.9k / 6.3k / 6.3k); TFDS resisc45 (31,500 images, 45 classes)",
                 id_key="image_id"),
        val="validation", splits=GIVEN),
    DatasetSpec("cars", "StanfordCars", 196, _hub(
        "tanganke/stanford_cars", "eecb78ea10909d57ec0ace8afed332d342c36b79", "its commit page ('Update README.md')"),
        Expected({"train": 8144, "test": 8041}, 196, "torchvision StanfordCars docs (8,144 / 8,041, 196 classes); "
                 "tanganke/stanford_cars README (test 8,041)"),
        splits=HELD_OUT + " (not the repository's 7 corruption splits)"),
    DatasetSpec("fgvc", "FGVC", 100, _hub(
        "Multimodal-Fatima/FGVC_Aircraft_train", "5b3589f31d91b16f10515e3157e2579cd936b438",
        "its tree page (108 commits, the most seen)"),
        Expected({"train": 3334, "test": 3333}, 100, "FourierFT paper (arXiv 2405.03003) Table 8: train 3,000 + val "
                 "334 = 3,334, test 3,333, 100 classes; torchvision FGVCAircraft docs (100 variants, 70 families, 30 "
                 "manufacturers); the repositories' cards give no counts"),
        test_pin=_hub("Multimodal-Fatima/FGVC_Aircraft_test", "4ea216fbb2553126232cb077b897ddd57fe23e9c",
                      "its README commits page (the latest listed, Mar 24 2023)")),
    DatasetSpec("cifar100", "CIFAR100", 100, _hub(
        "uoft-cs/cifar100", "aadb3af77e9048adbea6b47c21a81e47dd092ae5",
        "its tree page (main's head, 'Convert dataset to Parquet (#4)'); the same commit is pinned by "
        "embeddings-benchmark/mteb mteb/tasks/Image/ImageClassification/eng/CIFAR.py@935f621a5f5c553eb98cfbcf55d022f58c4dcec0"),
        Expected({"train": 50000, "test": 10000}, 100, "uoft-cs/cifar100 card @ f90290f (dataset_info; fine_label: "
                 "100 classes)"), image_key="img", label_key="fine_label"),
    DatasetSpec("digits04", "Digits 0-4", 5, source="digits", hflip=False, classes=(0, 1, 2, 3, 4),
                splits="sklearn's digits 0-4, stratified 70/30 (seed 42), then 10% of train held out"),
    DatasetSpec("digits59", "Digits 5-9", 5, source="digits", hflip=False, classes=(5, 6, 7, 8, 9),
                splits="sklearn's digits 5-9, stratified 70/30 (seed 42), then 10% of train held out"),
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


def source_rows(names: list[str], data_dir: str | None, out: str | None = None,
                given: dict[str, str] | None = None) -> list[tuple[str, str, str, Expected | None]]:
    """Where each dataset of a plan comes from, for the dry run: the Hub id @ revision (or the local folder), the
    splits used, the expected counts."""
    rows = []
    for name in dict.fromkeys(names):
        spec = get_spec(name)
        if spec.source == "digits":
            where = "sklearn's digits (bundled with scikit-learn)"
        elif data_dir:
            where = f"--data-dir {_local_folder(data_dir, spec)} (a local copy: verified by counts)"
        else:
            where = " + ".join(shown_revision(p, out, given) for p in (spec.pin, spec.test_pin) if p)
        rows.append((name, where, spec.splits, spec.expected))
    return rows


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}.")
    return DATASETS[name]


# --- loading ------------------------------------------------------------------------------------------
def _instead(spec: DatasetSpec) -> str:
    return (f"--data-dir DIR ({DATA_DIR_HELP}; DIR may also hold one such folder per dataset name, e.g. "
            f"DIR/{spec.name})")


def unavailable(spec: DatasetSpec, why: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"Dataset {spec.name!r} ({spec.pin.repo}) is not available: {why}. Download it where the Hub is reachable "
        f"and pass {_instead(spec)}.")


def _local_folder(data_dir: str | os.PathLike, spec: DatasetSpec) -> Path:
    root = Path(data_dir)
    return root / spec.name if (root / spec.name).is_dir() else root


def _load_local(folder: Path) -> dict[str, Any]:
    """The splits of a local copy (a split named "val" is taken for "validation")."""
    import datasets

    if not folder.is_dir():
        raise DataUnavailableError(f"--data-dir {folder} is not a folder; expected {DATA_DIR_HELP}.")
    if (folder / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(str(folder))
    elif not any(p.is_dir() for p in folder.iterdir()):
        raise DataUnavailableError(f"{folder} holds no split or class folders; expected {DATA_DIR_HELP}.")
    else:
        loaded = datasets.load_dataset("imagefolder", data_dir=str(folder))
    return {("validation" if split == "val" else split): data for split, data in loaded.items()}


def _load_hub(spec: DatasetSpec, sources: Sources) -> tuple[dict[str, Any], str]:
    """The splits used, from the Hub at the commits this run resolves (recorded in `sources`); and where from."""
    if not offline_mode() and not hub_reachable():
        raise unavailable(spec, "the Hugging Face Hub cannot be reached (no network) and no --data-dir was given")
    loaded, where = {}, []
    for pin, splits in ((spec.pin, spec.used), (spec.test_pin, [spec.test] if spec.test_pin else [])):
        if not splits:
            continue
        parts, at = load_hub_dataset(pin, sources, _instead(spec), f"Dataset {spec.name!r}", split=splits)
        loaded.update(zip(splits, parts))
        where.append(at)
    return loaded, " + ".join(where)


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


def _renamed(ds: Any, spec: DatasetSpec) -> Any:
    """The spec's image / label columns renamed to `image` / `label` (local copies may already use those)."""
    for key, std in ((spec.image_key, "image"), (spec.label_key, "label")):
        if std not in ds.column_names and key in ds.column_names:
            ds = ds.rename_column(key, std)
    missing = {"image", "label"} - set(ds.column_names)
    if missing:
        raise DataUnavailableError(f"Dataset {spec.name!r} has columns {ds.column_names}; expected {spec.image_key!r} "
                                   f"and {spec.label_key!r} (or image / label).")
    return ds


def train_images(name: str) -> int:
    """Images one epoch of dataset `name` trains on: its train split (the card's count; digits: the generated split)
    less the validation share `holdout` takes where the data set has no validation split (datasets rounds it up)."""
    spec = get_spec(name)
    rows = len(_digits(spec)["train"]) if spec.source == "digits" else spec.expected.splits["train"]
    return rows if spec.val else rows - math.ceil(VAL_FRACTION * rows)


def holdout(train: Any, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> tuple[Any, Any]:
    """Split `fraction` of `train` off as validation with a fixed seed."""
    parts = train.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]


def _pick(loaded: dict[str, Any], name: str | None, spec: DatasetSpec, role: str) -> Any:
    if name in loaded:
        return loaded[name].select_columns(["image", "label"])
    if role == "val":
        return None
    raise DataUnavailableError(f"Dataset {spec.name!r} has splits {sorted(loaded)}; no {role} split "
                               f"(looked for {name!r}).")


def load_splits(name: str, data_dir: str | os.PathLike | None = None, accept_subset: bool = False,
                sources: Sources | None = None) -> Splits:
    """Train / val / test of dataset `name` by its registry rule, from `data_dir` when given, else the Hub (at the
    commits `sources` resolves and records), verified against the card's counts before anything else."""
    spec = get_spec(name)
    sources = sources if sources is not None else Sources(None)
    if spec.source == "digits":
        loaded, where = _digits(spec), "sklearn's digits"
        sources.generated(name, "sklearn's digits (bundled with scikit-learn)")
    elif data_dir is not None:
        folder = _local_folder(data_dir, spec)
        loaded, where = _load_local(folder), f"--data-dir {folder}: a local copy"
        sources.local(spec.pin, name, folder, "--data-dir")
    else:
        loaded, where = _load_hub(spec, sources)
    loaded = {split: _renamed(data, spec) for split, data in loaded.items()}
    verify(name, loaded, spec.expected, image_key="image", accept_subset=accept_subset, where=where)
    train, test = _pick(loaded, spec.train, spec, "train"), _pick(loaded, spec.test, spec, "test")
    val = _pick(loaded, spec.val or "validation", spec, "val")
    if val is None:
        train, val = holdout(train)
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
