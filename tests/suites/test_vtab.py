"""benchmarks.vtab end to end on tiny generated data, plus its data module's split rules and transforms."""

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from conftest import killed_after
from timm.models import save_for_hf

import benchmarks.core.models as models_module
import benchmarks.vtab.data as data_module
from benchmarks.core.models import ModelSource, create_model
from benchmarks.vtab import cli as vtab
from benchmarks.vtab import plan as image_runs
from benchmarks.vtab.data import build_transform, holdout, load_splits

from support.distributed import become_rank, free_port
from support.images import write_image_folder

pytestmark = pytest.mark.usefixtures("datasets_cache")  # arrow files in the test's own folder



TINY_VIT = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=2)




@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("data"), {"train": 10, "test": 4})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A local timm checkpoint folder (config.json + model.safetensors) of a tiny random ViT."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, **TINY_VIT)
    folder = tmp_path_factory.mktemp("ckpt")
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


# --- split rules and transforms -------------------------------------------------------------------------
def test_split_rules_hold_out_ten_percent_of_train_with_a_fixed_seed(image_folder):
    splits = load_splits("pets", image_folder, accept_subset=True)  # pets has no validation split
    assert (len(splits.train), len(splits.val), len(splits.test), splits.num_classes) == (27, 3, 12, 3)
    again = load_splits("pets", image_folder, accept_subset=True)
    assert [np.asarray(im).sum() for im in again.val["image"]] == [np.asarray(im).sum() for im in splits.val["image"]]
    train, val = holdout(splits.test, fraction=0.25, seed=1)
    assert (len(train), len(val)) == (9, 3)


def test_an_existing_validation_split_is_used(tmp_path):
    root = write_image_folder(tmp_path, {"train": 4, "val": 2, "test": 1})
    splits = load_splits("eurosat", root, accept_subset=True)  # eurosat's rule: use the validation split
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 3)


def test_save_to_disk_folder_per_dataset_name_with_the_hub_column_names(tmp_path):
    import datasets

    image = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(num_classes=4)})
    part = {"img": [image] * 4, "fine_label": [0, 1, 2, 3]}
    datasets.DatasetDict({s: datasets.Dataset.from_dict(part, features=features) for s in ("train", "test")}
                         ).save_to_disk(str(tmp_path / "cifar100"))
    splits = load_splits("cifar100", tmp_path, accept_subset=True)  # --data-dir: one folder per dataset name
    assert splits.train.column_names == ["image", "label"]
    assert (len(splits.train), len(splits.val), len(splits.test), splits.num_classes) == (3, 1, 4, 4)


def test_digits_splits_are_stratified_and_relabelled():
    splits = load_splits("digits59")
    assert (len(splits.train), len(splits.val), len(splits.test), splits.num_classes) == (564, 63, 269, 5)
    assert np.bincount(splits.test["label"]).tolist() == [55, 54, 54, 52, 54]
    assert splits.test[0]["image"].size == (16, 16)


def test_transforms_follow_the_timm_data_config():
    config = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 0.9,
              "interpolation": "bicubic"}
    image = np.full((50, 40, 3), 255, np.uint8)
    image[:, :20] = 0
    evaluated = build_transform(config, train=False)(image=image)["image"]
    assert evaluated.shape == (3, 32, 32) and evaluated.dtype == torch.float32
    assert evaluated.min().item() == -1.0 and evaluated.max().item() == 1.0  # (x/255 - 0.5) / 0.5
    torch.testing.assert_close(build_transform(config, train=False)(image=image)["image"], evaluated)
    trained = build_transform(config, train=True, hflip=False, crop_scale=(1.0, 1.0))(image=image)["image"]
    assert trained.shape == (3, 32, 32)


def test_model_path_accepts_a_safetensors_file_and_the_head_is_fresh(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, **TINY_VIT)
    save_file(model.state_dict(), tmp_path / "vit.safetensors")
    loaded = create_model(ModelSource("vit_tiny_patch16_224", str(tmp_path / "vit.safetensors"), TINY_VIT), 4)
    assert loaded.head.out_features == 4
    torch.testing.assert_close(loaded.blocks[1].attn.qkv.weight, model.blocks[1].attn.qkv.weight)
    save_file(model.half().state_dict(), tmp_path / "vit16.safetensors")   # a checkpoint stored in fp16
    loaded = create_model(ModelSource("vit_tiny_patch16_224", str(tmp_path / "vit16.safetensors"), TINY_VIT), 4)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_counts_are_made_on_the_architecture_that_trains(checkpoint):
    """--model-path FOLDER --model-args {...}: the meta-device copy used for counts gets the same arguments."""
    from benchmarks.core.models import architecture

    source = ModelSource("vit_tiny_patch16_224", str(checkpoint), {"img_size": 64})
    trained, counted = create_model(source, 4), architecture(source, 4)
    assert trained.pos_embed.shape == counted.pos_embed.shape == (1, 65, 64)   # (64 / 8)^2 patches + class token


# --- command line -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--method", "neat,adapterx", "Unknown method(s) adapterx; choose from neat, lora, dora, fourierft, peanut, "
                                  "vera, head, full."),
    ("--dataset", "mnist", "Unknown dataset 'mnist'; choose from pets, cifar10, dtd, eurosat, resisc45, cars, "
                           "fgvc, cifar100, digits59, digits04."),
    ("--match-params", "head", "--match-params head: not a method of this suite with an adapter size; choose from "
                               "neat, lora, dora, fourierft, peanut, vera."),
    ("--preset", "everything", "Unknown preset 'everything'; choose from qv, qv_mlp, all_linear."),
    ("--model", "vit_gigantic", "Unknown timm model 'vit_gigantic'; timm.list_models() lists the names "
                                "(e.g. vit_base_patch16_224.orig_in21k)."),
])
def test_bad_names_are_rejected_with_the_valid_ones(capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        vtab.main([flag, value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


DATA_HINT = ("Download it where the Hub is reachable and pass --data-dir DIR (an ImageFolder tree (train/, test/, "
             "optional val/) or a datasets.save_to_disk folder; DIR may also hold one such folder per dataset name, "
             "e.g. DIR/cifar10).")


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 as the libraries read it at import, with empty caches."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def test_offline_mode_without_a_cached_copy_stops_with_one_message(offline_hub, tmp_path, capsys):
    assert vtab.main(["--dataset", "cifar10", "--method", "head", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: Dataset 'cifar10': uoft-cs/cifar10 @ 0b2714987fa478483af9968de7c934580d0bb9a2 is not in the local cache and HF_HUB_OFFLINE is set: run "
        "once where the Hub is reachable (it fills the Hugging Face cache, HF_HOME; copy that here), or download it "
        "and pass --data-dir DIR (an ImageFolder tree (train/, test/, optional val/) or a datasets.save_to_disk "
        "folder; DIR may also hold one such folder per dataset name, e.g. DIR/cifar10).")
    assert not (tmp_path / "out").exists()


def test_no_network_stops_at_once_naming_the_flags(monkeypatch, tmp_path, capsys, image_folder):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data_module, "hub_reachable", lambda: False)
    monkeypatch.setattr(models_module, "hub_reachable", lambda: False)
    assert vtab.main(["--dataset", "cifar10", "--method", "head", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: Dataset 'cifar10' (uoft-cs/cifar10) is not available: the Hugging Face Hub cannot be reached "
        "(no network) and no --data-dir was given. " + DATA_HINT)
    # local data but no local weights: the message names --model-path
    assert vtab.main(["--dataset", "pets", "--method", "head", "--data-dir", str(image_folder),
                      "--accept-subset", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (  # after datasets' progress bars
        "error: Pretrained weights of 'vit_base_patch16_224.orig_in21k' are not available: the Hugging Face Hub "
        "cannot be reached (no network). Pass --model-path with a local copy (a timm folder with config.json + "
        "model.safetensors, or a .safetensors state dict).")
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_cli_end_to_end_on_local_data_and_a_local_checkpoint(tmp_path, image_folder, checkpoint, offline_hub,
                                                            capsys):
    out = tmp_path / "out"
    assert vtab.main(["--dataset", "pets", "--method", "neat,lora", "--data-dir", str(image_folder),
                      "--model-path", str(checkpoint), "--epochs", "2", "--batch-size", "8", "--micro-batch", "3",
                      "--workers", "1", "--device", "cpu", "--save-adapters", "neat", "--out", str(out),
                      "--lrs", "5e-3", "--no-progress", "--accept-subset"]) == 0
    neat = json.loads((out / "runs" / "neat_pets_seed0_lr0.005.json").read_text())
    assert (neat["method"], neat["dataset"], neat["seed"], neat["lr"]) == ("neat", "pets", 0, 5e-3)
    assert neat["method_params"] == 2 * 2 * (64 * 7 + 7 * 64) and neat["head_params"] == 64 * 3 + 3
    assert 0.0 <= neat["score"] <= 1.0 and neat["train_images_per_s"] > 0 and neat["metric"] == "accuracy"
    assert neat["scores"] == {"test": neat["score"], "validation": neat["selection_score"]}
    recipe = neat["config"]["recipe"]
    assert {k: recipe[k] for k in ("head_lr", "lr", "weight_decay", "epochs", "batch_size", "clip_grad", "lrs")} == {
        "head_lr": 5e-3, "lr": 5e-3, "weight_decay": 8e-4, "epochs": 2, "batch_size": 8, "clip_grad": 1.0,
        "lrs": [5e-3]}
    assert recipe["sources"]["weight_decay"] == "yibozhong/peanut image-classification/run.sh (pets)"
    assert recipe["sources"]["epochs"] == recipe["sources"]["lrs"] == "command line"
    # an effective batch of 8 from micro-batches: the largest divisor of 8 not above 3 is 2, so 4 accumulated
    assert (neat["config"]["micro_batch"], neat["config"]["grad_accum"]) == (2, 4)
    assert neat["optimizer_steps"] == 2 * 4   # 27 images: 13 micro-batches of 2 (last dropped), 4 steps per epoch
    assert neat["config"]["data"]["sizes"] == [27, 3, 12]
    # the paper suite's evaluation preprocessing: resize to the input size and centre crop, bilinear
    assert neat["config"]["data_config"]["input_size"] == [3, 32, 32]
    assert (neat["config"]["data_config"]["crop_pct"], neat["config"]["data_config"]["interpolation"]) == (
        1.0, "bilinear")
    assert neat["precision"] == {"trainable": ["float32"], "frozen": ["float32"], "autocast": None}
    local = "a local copy ({}): its commit is unknown; verified by counts"
    assert neat["sources"] == {   # local copies: named as such, no commit, no lock file
        "pets": {"kind": "dataset", "revision": None, "how": local.format("--data-dir"),
                 "local_copy": str(image_folder), "pinned_from": None},
        "vit_base_patch16_224.orig_in21k": {"kind": "model", "revision": None, "how": local.format("--model-path"),
                                            "local_copy": str(checkpoint), "pinned_from": None}}
    assert not (out / "sources.lock.json").exists()
    assert neat["device"]["type"] == "cpu" and "torch" in neat["versions"]
    lora = json.loads((out / "runs" / "lora_pets_seed0_lr0.005.json").read_text())
    assert lora["method_params"] == 2 * 2 * 16 * (64 + 64)   # r=16 on q and v of 2 blocks
    assert lora["config"]["peft_target"] == "qv" and neat["config"]["peft_target"] is None
    assert "adapter_path" not in lora
    assert {p.name for p in Path(neat["adapter_path"]).iterdir()} == {"adapter_config.json",
                                                                        "adapter_model.safetensors"}
    table = (out / "report.md").read_text()
    assert "| Method | Params | OxfordPets | Avg. |" in table
    assert f"| neat | 3.6K | {100 * neat['score']:.1f} |" in table
    assert f"| neat | OxfordPets | 3,584 | 0.005 | 0.005 | {100 * neat['selection_score']:.1f} |" in table
    assert (out / "accuracy_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "neat on pets seed 0 lr 0.005: test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_killed_half_way_resumes_without_recomputing_finished_lrs(tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--suite", "smoke", "--method", "neat,head", "--lrs", "0.01,0.03", "--epochs", "1",
            "--pretrain-epochs", "1", "--cache-dir", str(cache), "--out", str(out), "--no-progress"]
    real = image_runs.run_job
    monkeypatch.setattr(image_runs, "run_job", killed_after(3, real))
    with pytest.raises(KeyboardInterrupt):
        vtab.main(args)
    finished = sorted((out / "runs").iterdir())
    assert [p.name for p in finished] == ["head_digits59_seed0_lr0.01.json", "neat_digits59_seed0_lr0.01.json",
                                          "neat_digits59_seed0_lr0.03.json"]   # no temp file left behind
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished}
    weights = next(cache.glob("smoke-digits04-*/model.safetensors"))
    weights_time = weights.stat().st_mtime_ns
    assert (out / "adapters" / "neat_digits59_seed0_lr0.03" / "adapter_model.safetensors").is_file()

    rerun = []
    monkeypatch.setattr(image_runs, "run_job", lambda a, job, *rest: rerun.append(job.run) or real(a, job, *rest))
    assert vtab.main(args) == 0
    assert [(r.method, r.lr) for r in rerun] == [("head", 0.03)]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished} == before
    assert weights.stat().st_mtime_ns == weights_time  # the cached pre-trained ViT was reused
    table = (out / "report.md").read_text()
    assert "| neat |" in table and "| head | 0 |" in table and "| head | Digits 5-9 | 0 | 0.01, 0.03 |" in table

    rerun.clear()
    assert vtab.main(args) == 0 and rerun == []  # everything finished: nothing recomputed


def _ddp_rank(rank: int, argv: list[str], port: int) -> None:
    """One torchrun-style worker: the environment torchrun sets, then the CLI."""
    become_rank(rank, port)
    assert vtab.main(argv) == 0


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_result(tmp_path, image_folder, checkpoint, capfd):
    import torch.multiprocessing as mp

    port = free_port()
    out = tmp_path / "out"
    argv = ["--dataset", "pets", "--method", "neat", "--data-dir", str(image_folder), "--model-path",
            str(checkpoint), "--epochs", "1", "--batch-size", "8", "--micro-batch", "2", "--workers", "0",
            "--device", "cpu", "--out", str(out), "--no-progress", "--accept-subset"]
    # forked workers (gloo) skip a fresh interpreter's imports; the environment is torchrun's
    mp.start_processes(_ddp_rank, args=(argv, port), nprocs=2, start_method="fork")
    assert [p.name for p in (out / "runs").iterdir()] == ["neat_pets_seed0_lr0.005.json"]
    result = json.loads((out / "runs" / "neat_pets_seed0_lr0.005.json").read_text())
    assert result["device"]["world_size"] == 2 and result["ranks_agree"] is True
    assert (result["config"]["micro_batch"], result["config"]["grad_accum"]) == (2, 2)   # 8 = 2 x 2 x 2 processes
    assert capfd.readouterr().out.count("neat on pets seed 0 lr 0.005: test accuracy") == 1  # only rank 0 reports


def test_augmentations_are_reproducible_and_differ_between_workers():
    import datasets
    from torch.utils.data import DataLoader

    from benchmarks.vtab.data import ImageDataset

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    data = datasets.Dataset.from_dict({"image": [image] * 4, "label": [0] * 4},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "label": datasets.ClassLabel(num_classes=1)}))
    config = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3}

    def crops(workers: int) -> list[torch.Tensor]:
        dataset = ImageDataset(data, build_transform(config, train=True, seed=3))
        loader = DataLoader(dataset, batch_size=1, num_workers=workers, generator=torch.Generator().manual_seed(0))
        return [x[0] for x, _ in loader]

    in_process = crops(0)
    assert all(torch.equal(a, b) for a, b in zip(in_process, crops(0)))   # seeded: the same every run
    assert not torch.equal(in_process[0], in_process[1])                  # but random from image to image
    two_workers = crops(2)   # workers take items 0, 2 and 1, 3; each reseeds with its own seed
    assert all(torch.equal(a, b) for a, b in zip(two_workers, crops(2)))
    assert not torch.equal(two_workers[0], two_workers[1])


def test_unusable_local_data_is_reported_without_a_traceback(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exit_info:   # refused while parsing, before anything loads
        vtab.main(["--dataset", "pets", "--method", "head", "--data-dir", str(missing), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: --data-dir {missing} does not exist.")
    flat = write_image_folder(tmp_path / "flat", {"train": 2})  # no test/ folder
    argv = ["--dataset", "pets", "--method", "head", "--data-dir", str(flat), "--out", str(tmp_path / "out")]
    assert vtab.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: Dataset 'pets' (--data-dir {flat}: a local copy): no split 'test' (found ['train']); expected train "
        "3,680 / test 3,669; 37 classes (TFDS oxford_iiit_pet catalog (train 3,680 / test 3,669); mmpretrain "
        "OxfordIIITPet (trainval 3,680 / test 3,669, 37 categories)).")
    assert vtab.main(argv + ["--accept-subset"]) == 2   # a subset may lack splits, but the suite needs a test split
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: Dataset 'pets' has splits ['train']; no test split (looked for 'test').")
    assert not (tmp_path / "out").exists()


def test_hub_weights_load_at_the_resolved_commit_and_a_missing_repository_says_what_to_check(monkeypatch):
    import httpx
    from huggingface_hub.errors import RepositoryNotFoundError

    from benchmarks.core.sources import HubError

    sha, seen = "d" * 40, {}

    def missing(name, pretrained, **kwargs):
        seen.update(name=name, **kwargs)
        raise RepositoryNotFoundError("404", response=httpx.Response(404, request=httpx.Request("GET", "https://x")))

    monkeypatch.setattr(models_module, "hub_reachable", lambda: True)
    monkeypatch.setattr(models_module.timm, "create_model", missing)
    with pytest.raises(HubError) as err:
        create_model(ModelSource("vit_base_patch16_224.orig_in21k", revision=sha), 3)
    assert seen["pretrained_cfg_overlay"] == {"hf_hub_id": f"timm/vit_base_patch16_224.orig_in21k@{sha}"}
    assert str(err.value) == (
        f"Pretrained weights of 'vit_base_patch16_224.orig_in21k': timm/vit_base_patch16_224.orig_in21k @ {sha} was "
        "not found on the Hub: check the id (https://huggingface.co/timm/vit_base_patch16_224.orig_in21k) and the "
        "revision (a commit of that repository), and that you are logged in if it is private; or pass --model-path "
        "with a local copy (a timm folder with config.json + model.safetensors, or a .safetensors state dict).")
