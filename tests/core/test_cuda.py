"""On a CUDA GPU (`make gpu-check` runs these; skipped without one): the same model gives the CPU's outputs, the
mixed-adapter batch and the inference cache work on the device, merging in bf16 stays within bf16's rounding, and a
training step under bf16 autocast keeps the adapters fp32 with finite gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_core import NeatConfig

from conftest import randomize_adapters, tiny_vit
from support.tiny_text import tiny_inputs, tiny_model

pytestmark = pytest.mark.cuda
IMAGES = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def full_fp32():
    """Compare in full fp32: the GPU's TF32 convolutions and matmuls (cuDNN's default) round to 10 mantissa bits."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def two_adapter_vit() -> nn.Module:
    model = neat_vision.patch(tiny_vit(), rank=4)
    neat_core.inject(model, NeatConfig(rank=2, depth=4, activation="sin", targets=["attn.qkv", "mlp.fc1"]),
                     adapter="mlp")
    randomize_adapters(model, std=0.1)
    neat_core.set_adapter(model, "default")
    return model.eval()


def test_a_patched_vit_on_the_gpu_gives_the_cpu_outputs():
    model = two_adapter_vit()
    with torch.no_grad():
        on_cpu = model(IMAGES)
        on_gpu = copy.deepcopy(model).cuda()(IMAGES.cuda())
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)


def test_a_mixed_batch_on_the_gpu_equals_each_adapter_alone():
    model = two_adapter_vit().cuda()
    images, names = IMAGES.cuda(), ["default", "mlp", "__base__", "mlp", "default", "default"]
    with torch.no_grad(), neat_core.adapters_per_sample(model, names):
        mixed = model(images)
    for i, name in enumerate(names):
        with torch.no_grad():
            if name == "__base__":
                with neat_core.disabled(model):
                    alone = model(images[i:i + 1])
            else:
                neat_core.set_adapter(model, name)
                alone = model(images[i:i + 1])
        torch.testing.assert_close(mixed[i:i + 1], alone, atol=1e-5, rtol=1e-5)


def test_cached_inference_on_the_gpu_equals_a_fresh_forward():
    model = two_adapter_vit().cuda()
    with torch.no_grad():
        first, again = model(IMAGES.cuda()), model(IMAGES.cuda())
    assert torch.equal(first, again)
    fresh = two_adapter_vit().cuda()
    with torch.no_grad():
        torch.testing.assert_close(fresh(IMAGES.cuda()), first, atol=1e-6, rtol=1e-6)


def test_merging_a_bf16_model_on_the_gpu_stays_within_bf16_rounding():
    model = two_adapter_vit().cuda().to(torch.bfloat16)
    images = IMAGES.cuda().to(torch.bfloat16)
    with torch.no_grad():
        unmerged = model(images).float()
        neat_core.merge(model)
        merged = model(images).float()
        neat_core.unmerge(model)
        back = model(images).float()
    torch.testing.assert_close(merged, unmerged, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(back, unmerged, atol=5e-2, rtol=5e-2)


def test_a_training_step_under_bf16_autocast_keeps_fp32_adapters_with_finite_gradients():
    model = tiny_model("bert")
    neat_text.patch(model, rank=4)
    model.cuda().train()
    inputs = {k: v.cuda() for k, v in tiny_inputs(model).items()}
    labels = torch.tensor([0, 2], device="cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(**inputs).logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        optimizer.step()
        losses.append(loss.item())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert losses[-1] < losses[0]
