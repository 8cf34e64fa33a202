"""A Hub cache filled in the layout huggingface_hub writes, a recording HfApi, and a tiny trained ViT adapter."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi, constants

import neat_vision

from conftest import randomize_adapters, tiny_vit


VIT = dict(img_size=32, patch_size=8, depth=2)  # tiny_vit's architecture arguments


REPO = "org/neat-tiny"


COMMIT = "a" * 40


IMAGES = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def trained_vit(seed: int = 1):
    """tiny_vit with a NEAT adapter and head of non-zero values, and the base weights it started from."""
    model = tiny_vit()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    neat_vision.patch(model, rank=4)
    randomize_adapters(model, seed=seed)
    with torch.no_grad():
        model.head.weight.add_(seed)
    return model.eval(), base


def outputs(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IMAGES)


def blob_name(path: Path) -> str:
    """The blob name huggingface_hub gives a file: sha256 for LFS files (safetensors), git's blob sha1 else."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fill_cache(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT, ref: str = "main") -> Path:
    """Put `folder`'s files in `cache` as hf_hub_download leaves them: blobs/, snapshots/<commit>/ symlinks,
    refs/<ref>."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(folder.iterdir()):
        blob = repo / "blobs" / blob_name(file)
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache, with huggingface_hub offline (its constants are read at import: set them too)."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def fresh_vit(base):
    model = tiny_vit()
    model.load_state_dict(base)
    return model


class RecordingApi:
    """Stands in for HfApi's network methods (and a reachable Hub); keeps the arguments and the uploaded files'
    bytes."""

    def __init__(self, monkeypatch):
        import neat_core.hub

        self.calls = []
        monkeypatch.setattr(neat_core.hub, "hub_unavailable_reason", lambda: None)
        monkeypatch.setattr(HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", self.upload_folder)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs.pop("folder_path"))
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        self.calls.append(("upload_folder", files, kwargs))
        return "commit-info"


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])

