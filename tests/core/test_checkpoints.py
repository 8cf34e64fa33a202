"""The state-dict contract as a property: every model family x merge state x way of saving reloads to the same
outputs (within 1e-5) or stops with a clear error (docs/ARCHITECTURE.md, "State dicts and checkpoints")."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import timm
import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_core.inject import adapter_keys

from conftest import randomize_adapters
from support.tiny_text import tiny_model

TOL = dict(atol=1e-5, rtol=1e-5)


@dataclass(frozen=True)
class Family:
    build: Callable[[int], nn.Module]  # seed -> plain model (weights drawn from the seed), eval mode
    inputs: Callable[[], dict[str, torch.Tensor]]
    patch: Callable[[nn.Module], nn.Module]
    transformers: bool


def _timm(name: str, **kwargs) -> Callable[[int], nn.Module]:
    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
    return build


def _hf(model_type: str) -> Callable[[int], nn.Module]:
    return lambda seed: tiny_model(model_type, seed=seed)


def _images(size: int) -> Callable[[], dict[str, torch.Tensor]]:
    return lambda: {"x": torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))}


def _tokens() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(1, 100, (2, 7), generator=torch.Generator().manual_seed(0))}


FAMILIES = {
    "vit": Family(_timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2), _images(32),
                  lambda m: neat_vision.patch(m, rank=3), False),
    "swin": Family(_timm("swin_tiny_patch4_window7_224", img_size=56, depths=(1, 1), embed_dim=24, num_heads=(1, 2),
                         window_size=7), _images(56), lambda m: neat_vision.patch(m, rank=3), False),
    "bert": Family(_hf("bert"), _tokens, lambda m: neat_text.patch(m, rank=3), True),
    "llama": Family(_hf("llama"), _tokens, lambda m: neat_text.patch(m, rank=3), True),
}


def run(family: Family, model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        inputs = family.inputs()
        return model.eval()(**inputs).logits if family.transformers else model.eval()(inputs["x"])


def patched(family: Family, seed: int = 0, adapter_seed: int = 1, merged: bool = False) -> nn.Module:
    model = family.patch(family.build(seed))
    randomize_adapters(model, std=0.2, seed=adapter_seed)
    if merged:
        neat_core.merge(model)
    return model.eval()


def adapter_values(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".neat." in n}


def merged_flags(model: nn.Module) -> list[str | None]:
    return [layer.merged_adapter for _, layer in neat_core.neat_layers(model)]


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- one check per way of saving -----------------------------------------------------------------------------
def state_dict_patched_to_patched(family, source, merged, tmp_path):
    expected = run(family, source)
    target = patched(family, seed=3, adapter_seed=4, merged=merged)  # other base and adapter, same merge state
    assert str(target.load_state_dict(clone_state(source))) == "<All keys matched successfully>"
    assert merged_flags(target) == merged_flags(source)  # a merged target ends merged with the new weights
    torch.testing.assert_close(run(family, target), expected, **TOL)
    if merged:
        neat_core.unmerge(target)
        torch.testing.assert_close(run(family, target), expected, **TOL)


def state_dict_plain_to_patched(family, source, merged, tmp_path):
    other_base = family.build(7)  # e.g. a fine-tuned base, or a plain checkpoint to resume from
    adapters = adapter_values(source)
    assert str(source.load_state_dict(other_base.state_dict())) == "<All keys matched successfully>"  # strict
    assert all(torch.equal(v, adapter_values(source)[k]) for k, v in adapters.items())  # adapters untouched
    with neat_core.disabled(source):
        torch.testing.assert_close(run(family, source), run(family, other_base), atol=0, rtol=0)
    flags = merged_flags(source)
    assert flags == ["default" if merged else None] * len(flags) and flags  # a merged model stays merged
    reference = family.patch(copy.deepcopy(other_base))
    reference.load_state_dict(adapter_values(source), strict=False)
    torch.testing.assert_close(run(family, source), run(family, reference), **TOL)


def state_dict_patched_to_plain(family, source, merged, tmp_path):
    with neat_core.disabled(source):
        base = run(family, source)
    state = clone_state(source)
    plain = family.build(5)
    result = plain.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == sorted(adapter_keys(source)) != []
    torch.testing.assert_close(run(family, plain), base, atol=0, rtol=0)
    strict = family.build(5)
    assert str(strict.load_state_dict(neat_core.base_state_dict(source))) == "<All keys matched successfully>"
    torch.testing.assert_close(run(family, strict), base, atol=0, rtol=0)


def adapter_folder(family, source, merged, tmp_path):
    expected = run(family, source)
    if merged:
        with pytest.raises(ValueError, match=r"^The adapter is merged into the weights; call "
                                             r"neat_core\.unmerge\(model\) before saving\.$"):
            neat_core.save_adapter(source, tmp_path / "adapter")
        assert not (tmp_path / "adapter" / "adapter_model.safetensors").exists()
        return
    neat_core.save_adapter(source, tmp_path / "adapter")
    fresh = neat_core.load_adapter(family.build(0), tmp_path / "adapter")
    torch.testing.assert_close(run(family, fresh), expected, **TOL)


def save_pretrained(family, source, merged, tmp_path):
    """transformers: save_pretrained -> neat_text.from_pretrained and the plain class's from_pretrained;
    timm: torch.save(state_dict) -> timm.models.load_checkpoint into a patched and (strict=False) a plain model."""
    expected = run(family, source)
    with neat_core.disabled(source):
        base = run(family, source)
    if family.transformers:
        source.save_pretrained(tmp_path)
        torch.testing.assert_close(run(family, neat_text.from_pretrained(tmp_path)), expected, **TOL)
        plain = type(source).from_pretrained(tmp_path)
        torch.testing.assert_close(run(family, plain), base, atol=0, rtol=0)
        return
    torch.save(source.state_dict(), tmp_path / "checkpoint.pth")
    target = patched(family, seed=3, adapter_seed=4)
    timm.models.load_checkpoint(target, str(tmp_path / "checkpoint.pth"))
    torch.testing.assert_close(run(family, target), expected, **TOL)
    plain = family.build(5)
    timm.models.load_checkpoint(plain, str(tmp_path / "checkpoint.pth"), strict=False)
    torch.testing.assert_close(run(family, plain), base, atol=0, rtol=0)


def whole_model_pickle(family, source, merged, tmp_path):
    expected = run(family, source)
    buffer = io.BytesIO()
    torch.save(source, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)  # our own file: never unpickle downloaded ones
    assert merged_flags(loaded) == merged_flags(source)
    torch.testing.assert_close(run(family, loaded), expected, atol=0, rtol=0)


ROUTES = [state_dict_patched_to_patched, state_dict_plain_to_patched, state_dict_patched_to_plain, adapter_folder,
          save_pretrained, whole_model_pickle]


@pytest.mark.parametrize("route", ROUTES, ids=[r.__name__ for r in ROUTES])
@pytest.mark.parametrize("merged", [False, True], ids=["unmerged", "merged"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_reloading_gives_the_same_outputs_or_a_clear_error(name, merged, route, tmp_path):
    family = FAMILIES[name]
    source = patched(family, merged=merged)
    with neat_core.disabled(source):
        assert (run(family, source) - run(family, family.build(0))).abs().max() == 0
    route(family, source, merged, tmp_path)
