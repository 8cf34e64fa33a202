"""neat_core.hub and neat_vision.from_pretrained, without network: local folders, a Hub cache filled in the
layout huggingface_hub writes (read through the real client with HF_HUB_OFFLINE), and a recording HfApi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import neat_core
import neat_vision
from neat_core.hub import AdapterNotFoundError

from conftest import tiny_vit
from support.hub_cache import REPO, VIT, RecordingApi, fill_cache, fresh_vit, front_matter, outputs, trained_vit
















# --- local folders ------------------------------------------------------------------------------------
def test_from_pretrained_local_folder_with_base_weights_file(tmp_path):
    model, base = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    save_file(base, tmp_path / "base.safetensors")
    loaded = neat_vision.from_pretrained(tmp_path / "adapter", model_path=tmp_path / "base.safetensors", **VIT)
    assert not loaded.training and loaded.head.weight.shape == (5, 192)  # num_classes from the saved head
    assert torch.equal(outputs(loaded), outputs(model))
    assert neat_core.trainable_parameters(loaded) == neat_core.trainable_parameters(model)


def test_from_pretrained_with_a_timm_folder_and_with_timm_overlay(tmp_path):
    from timm.models import save_for_hf

    model, base = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    save_for_hf(fresh_vit(base), str(tmp_path / "timm-folder"), safe_serialization=True)
    by_folder = neat_vision.from_pretrained(tmp_path / "adapter", model_path=tmp_path / "timm-folder")
    assert torch.equal(outputs(by_folder), outputs(model))
    overlay = dict(file=str(tmp_path / "timm-folder" / "model.safetensors"))
    by_overlay = neat_vision.from_pretrained(tmp_path / "adapter", pretrained_cfg_overlay=overlay, **VIT)
    assert torch.equal(outputs(by_overlay), outputs(model))


def test_from_pretrained_without_base_weights_names_the_ways_out(tmp_path, offline_cache):
    model, _ = trained_vit()
    neat_core.save_adapter(model, tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        neat_vision.from_pretrained(tmp_path)
    assert str(err.value) == (
        "Cannot build base model 'vit_tiny_patch16_224.augreg_in21k_ft_in1k' with pretrained weights: "
        "HF_HUB_OFFLINE=1 is set, and timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k is not in the Hugging Face "
        f"cache ({offline_cache}). Pass model_path= (a timm folder with config.json + model.safetensors, or a "
        "weights file), or pretrained=False for random weights.")
    with pytest.raises(ValueError, match="cannot be combined with pretrained=False"):
        neat_vision.from_pretrained(tmp_path, model_path=tmp_path, pretrained=False)


def test_a_base_pretrained_elsewhere_builds_from_its_architecture(tmp_path):
    """An adapter whose base timm does not know (a tag of a locally pre-trained model)."""
    model, base = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    meta_file = tmp_path / "adapter" / "adapter_config.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "base_model": "vit_tiny_patch16_224.mine"}))
    save_file(base, tmp_path / "base.safetensors")
    loaded = neat_vision.from_pretrained(tmp_path / "adapter", model_path=tmp_path / "base.safetensors", **VIT)
    assert torch.equal(outputs(loaded), outputs(model))
    random_base = neat_vision.from_pretrained(tmp_path / "adapter", pretrained=False, **VIT)
    assert random_base.pretrained_cfg["architecture"] == "vit_tiny_patch16_224"
    with pytest.raises(FileNotFoundError, match=r"^Cannot build base model 'vit_tiny_patch16_224\.mine' with "
                       r"pretrained weights \(RuntimeError: Invalid pretrained tag \(mine\) for vit_tiny_patch16_224"):
        neat_vision.from_pretrained(tmp_path / "adapter", **VIT)


def test_revision_is_refused_for_a_local_folder_and_missing_paths_read_as_paths(tmp_path):
    model, _ = trained_vit()
    neat_core.save_adapter(model, tmp_path)
    with pytest.raises(ValueError, match=f"^revision='v1' applies to Hub repo ids; '{tmp_path}' is a local path.$"):
        neat_core.load_adapter(tiny_vit(), tmp_path, revision="v1")
    with pytest.raises(FileNotFoundError, match="^No adapter_config.json in runs/a/b: expected a folder"):
        neat_core.load_adapter(tiny_vit(), "runs/a/b")
    assert neat_core.resolve_adapter(str(tmp_path)) == tmp_path  # an existing folder is never a repo id


# --- the Hub cache, offline ---------------------------------------------------------------------------
def test_load_adapter_from_the_hub_cache_offline(tmp_path, offline_cache):
    model, base = trained_vit()
    neat_core.save_adapter(model, tmp_path / "v0")
    fill_cache(offline_cache, REPO, tmp_path / "v0")
    fresh = fresh_vit(base)
    assert neat_core.load_adapter(fresh, REPO) is fresh
    assert torch.equal(outputs(fresh), outputs(model))


def test_revision_picks_a_tag_or_a_commit(tmp_path, offline_cache):
    model, base = trained_vit(seed=1)
    other, _ = trained_vit(seed=2)
    neat_core.save_adapter(model, tmp_path / "v0")
    neat_core.save_adapter(other, tmp_path / "v1")
    fill_cache(offline_cache, REPO, tmp_path / "v0")
    fill_cache(offline_cache, REPO, tmp_path / "v1", commit="b" * 40, ref="v1")
    for revision, expected in (("v1", other), ("b" * 40, other), (None, model), ("main", model)):
        fresh = neat_core.load_adapter(fresh_vit(base), REPO, revision=revision)
        assert torch.equal(outputs(fresh), outputs(expected)), revision
    assert not torch.equal(outputs(model), outputs(other))


def test_from_pretrained_hub_id_offline(tmp_path, offline_cache):
    model, base = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    fill_cache(offline_cache, REPO, tmp_path / "adapter")
    save_file(base, tmp_path / "base.safetensors")
    loaded = neat_vision.from_pretrained(REPO, model_path=tmp_path / "base.safetensors", **VIT)
    assert torch.equal(outputs(loaded), outputs(model))


def test_offline_and_not_cached_is_one_clear_error(offline_cache):
    expected = (f"Adapter 'org/missing@v2' is neither a local folder nor in the Hugging Face cache ({offline_cache}),"
                " and HF_HUB_OFFLINE=1 is set. To work offline, download it once while online (`hf download "
                "org/missing adapter_config.json adapter_model.safetensors`), point HF_HUB_CACHE at a cache that "
                "has it, or pass the path of a folder written by neat_core.save_adapter.")
    model = tiny_vit()
    with pytest.raises(AdapterNotFoundError) as err:
        neat_core.load_adapter(model, "org/missing", revision="v2")
    assert str(err.value) == expected
    assert isinstance(err.value, FileNotFoundError) and err.value.__cause__ is None
    assert not list(neat_core.neat_layers(model))


def test_a_cached_repo_for_another_model_is_refused_like_a_local_folder(tmp_path, offline_cache):
    model, _ = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    fill_cache(offline_cache, REPO, tmp_path / "adapter")
    errors = []
    for source in (tmp_path / "adapter", REPO):
        wide = tiny_vit(num_classes=7)
        before = {k: v.clone() for k, v in wide.state_dict().items()}
        with pytest.raises(ValueError) as err:
            neat_core.load_adapter(wide, source)
        errors.append(str(err.value).replace(str(source), "<source>"))
        assert not list(neat_core.neat_layers(wide))
        assert all(torch.equal(v, before[k]) for k, v in wide.state_dict().items())
    assert errors[0] == errors[1]
    assert errors[0].startswith("The adapter at <source> (saved for vit_tiny_patch16_224.augreg_in21k_ft_in1k) "
                                "does not fit this VisionTransformer: head.weight: file has (5, 192), model "
                                "needs (7, 192)")


def test_environment_variables_reach_the_real_client(tmp_path):
    """A fresh interpreter with only HF_HUB_OFFLINE=1 and HF_HUB_CACHE set finds the cached snapshot, and
    says the offline error for a repo it lacks."""
    model, _ = trained_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    snapshot = fill_cache(tmp_path / "cache", REPO, tmp_path / "adapter")
    code = ("import neat_core\n"
            f"print(neat_core.resolve_adapter({REPO!r}))\n"
            "neat_core.resolve_adapter('org/missing')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).parents[2], timeout=120)
    assert run.returncode == 1
    assert run.stdout == f"{snapshot}\n"
    assert run.stderr.strip().splitlines()[-1] == (
        "neat_core.remote.AdapterNotFoundError: Adapter 'org/missing' is neither a local folder nor in the Hugging "
        f"Face cache ({tmp_path / 'cache'}), and HF_HUB_OFFLINE=1 is set. To work offline, download it once while "
        "online (`hf download org/missing adapter_config.json adapter_model.safetensors`), point HF_HUB_CACHE at a "
        "cache that has it, or pass the path of a folder written by neat_core.save_adapter.")


# --- upload -------------------------------------------------------------------------------------------




def test_push_to_hub_creates_the_repo_and_uploads_adapter_files_and_card(tmp_path, monkeypatch):
    api = RecordingApi(monkeypatch)
    model, _ = trained_vit()
    result = tmp_path / "neat_digits59_seed0.json"
    result.write_text(json.dumps({"method": "neat", "dataset": "digits59", "seed": 0, "accuracy": 0.9375,
                                  "config": {"data": {"title": "Digits 5-9"}}}))
    assert neat_core.push_to_hub(model, REPO, private=True, results=result, commit_message="Add digits adapter") \
        == "commit-info"
    (create, repo_id, create_kw), (upload, files, upload_kw) = api.calls
    assert (create, repo_id, create_kw) == ("create_repo", REPO, {"private": True, "exist_ok": True})
    assert upload == "upload_folder"
    assert upload_kw == {"repo_id": REPO, "commit_message": "Add digits adapter", "revision": None}
    assert sorted(files) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    local = neat_core.save_adapter(model, tmp_path / "local")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert files[name] == (local / name).read_bytes(), name
    readme = files["README.md"].decode()
    meta = front_matter(readme)
    assert meta["library_name"] == "neat-peft"
    assert meta["base_model"] == "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    assert meta["tags"] == ["neat", "peft", "timm"]
    assert meta["model-index"] == [{"name": REPO, "results": [{
        "task": {"type": "image-classification"}, "dataset": {"name": "Digits 5-9", "type": "digits59"},
        "metrics": [{"type": "accuracy", "value": 0.9375}]}]}]
    assert f'model = neat_vision.from_pretrained("{REPO}")' in readme
    assert "| Digits 5-9 | accuracy | 0.9375 |" in readme and "rank 4, depth 2, activation `relu`" in readme


def test_pushed_files_load_back_through_the_cache(tmp_path, monkeypatch, offline_cache):
    api = RecordingApi(monkeypatch)
    model, base = trained_vit()
    neat_core.push_to_hub(model, REPO)
    _, files, upload_kw = api.calls[1]
    assert upload_kw["commit_message"] == "Upload NEAT adapter"
    assert "metrics" not in front_matter(files["README.md"].decode())
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for name, data in files.items():
        (pushed / name).write_bytes(data)
    fill_cache(offline_cache, REPO, pushed)
    assert torch.equal(outputs(neat_core.load_adapter(fresh_vit(base), REPO)), outputs(model))


@pytest.mark.parametrize("bad, kwargs, message", [
    ("merged", {}, "The adapter is merged into the weights; call neat_core.unmerge(model) before saving."),
    ("results", {"results": {"dataset": "digits59"}}, "results: a benchmark result needs a numeric 'accuracy' (or "
                                                      "'metric' and 'score'), got {'dataset': 'digits59'}."),
    ("results", {"results": "missing.json"}, "results: cannot read benchmark result JSON 'missing.json'"),
    ("repo", {"repo_id": "no-owner"}, "repo_id must look like 'owner/name', got 'no-owner'."),
])
def test_push_to_hub_checks_everything_before_any_network_call(monkeypatch, bad, kwargs, message):
    api = RecordingApi(monkeypatch)
    model, _ = trained_vit()
    if bad == "merged":
        neat_core.merge(model)
    with pytest.raises(ValueError) as err:
        neat_core.push_to_hub(model, **{"repo_id": REPO, **kwargs})
    assert str(err.value).startswith(message)
    assert api.calls == []
