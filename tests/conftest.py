"""Shared small models for the tests (random init, CPU, no downloads); shared fixtures come from `support`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest_plugins = ("support.hub_cache", "support.glue_assets")  # offline_cache, offline_assets


class TinyBlock(nn.Module):
    """A fused-qkv block shaped like timm's attention, small enough to check by hand."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return x + self.proj(torch.tanh(q) * k + v)


class TinyNet(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TinyBlock(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def make_tiny(seed: int = 0, **kw) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kw)


def tiny_vit(**kw) -> nn.Module:
    import timm

    torch.manual_seed(0)
    args = dict(pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=5)
    return timm.create_model("vit_tiny_patch16_224", **{**args, **kw})


def randomize_adapters(model: nn.Module, std: float = 0.2, seed: int = 1) -> None:
    """Give every NEAT parameter non-zero values so that the adapter changes outputs."""
    from neat_core import neat_layers

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in neat_layers(model):
            for p in layer.neat.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def killed_after(count: int, real):
    """A stand-in for image_runs.run_job that runs `count` jobs with `real`, then raises KeyboardInterrupt (a sweep
    killed half way)."""
    calls = []

    def run_job(args, job, *rest):
        if len(calls) == count:
            raise KeyboardInterrupt
        calls.append(job.run)
        return real(args, job, *rest)
    return run_job


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: skipped without one (`make gpu-check` runs them on a GPU machine)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """The tests' models are tiny: one intra-op thread beats two contended ones (up to ~100x on a shared
    2-core machine), and timings in the speed smoke test stay comparable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(4, 5, 16, generator=torch.Generator().manual_seed(123))


@pytest.fixture
def datasets_cache(monkeypatch, tmp_path):
    """Arrow files that `datasets` writes for local files go to the test's own folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
