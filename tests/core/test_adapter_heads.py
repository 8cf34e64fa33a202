"""Two task adapters on one backbone, each with its own trained head (modules_to_save): switching, mixing in one
batch, disabling, saving and loading, and both PEFT exports keep every adapter with its own head."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_core.inject import saved_parameters

from conftest import tiny_vit
from support.tiny_text import tiny_inputs, tiny_model

import peft

TOL = dict(atol=1e-6, rtol=0)


@dataclass
class Family:
    """How to build a base model of one kind, patch it with adapter `name`, and run it on a fixed batch."""

    build: Callable[[], nn.Module]
    patch: Callable[[nn.Module, str], nn.Module]
    batch: Callable[[nn.Module], dict]
    head: str

    def run(self, model: nn.Module, rows: slice | None = None) -> torch.Tensor:
        inputs = self.batch(model)
        if rows is not None:
            inputs = {k: v[rows] for k, v in inputs.items()}
        with torch.no_grad():
            out = model.eval()(**inputs)
        return getattr(out, "logits", out)


def _images(model: nn.Module) -> dict:
    return {"x": torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


def _tokens(model: nn.Module) -> dict:
    return {"input_ids": torch.cat([tiny_inputs(model, seed)["input_ids"] for seed in (0, 1)])}


FAMILIES = {
    "timm-vit": Family(tiny_vit, lambda m, name: neat_vision.patch(m, rank=3, adapter=name), _images, "head"),
    "hf-bert": Family(lambda: tiny_model("bert"), lambda m, name: neat_text.patch(m, rank=3, adapter=name), _tokens,
                      "classifier"),
}


def _train(model: nn.Module, name: str, seed: int) -> None:
    """Stand-in for training adapter `name`: random network weights and a shifted head (its own copy)."""
    neat_core.set_adapter(model, name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in neat_core.neat_layers(model):
            for p in layer.neat[name].parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for p in [p for h in neat_core.adapter_configs(model)[name].modules_to_save
                  for p in saved_parameters(model, h, name).values()]:
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.fixture(params=list(FAMILIES))
def two(request, tmp_path):
    """(family, a model with adapters "a" and "b", each with its own head, and each adapter alone on a fresh base)."""
    family = FAMILIES[request.param]
    model = family.patch(family.build(), "a")
    family.patch(model, "b")
    _train(model, "a", seed=1)
    _train(model, "b", seed=2)
    alone = {}
    for name in ("a", "b"):
        neat_core.save_adapter(model, tmp_path / name, adapter=name)
        alone[name] = neat_core.load_adapter(family.build(), tmp_path / name)
    return family, model, alone


def test_each_adapter_trains_its_own_head_and_switching_a_b_a_equals_each_alone(two):
    family, model, alone = two
    expected = {name: family.run(m) for name, m in alone.items()}
    assert (expected["a"] - expected["b"]).abs().max() > 1e-2
    for name in ("a", "b", "a"):
        neat_core.set_adapter(model, name)
        torch.testing.assert_close(family.run(model), expected[name], **TOL)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert {n for n in trainable if n.startswith(family.head + ".")} == {
            f"{family.head}.copies.{name}.{p}" for p in ("weight", "bias")}
        assert all(f".neat.{name}." in n for n in trainable if not n.startswith(family.head + "."))


def test_state_dict_shows_the_active_heads_under_the_plain_names(two):
    family, model, alone = two
    neat_core.set_adapter(model, "b")
    state = model.state_dict()
    head_b = saved_parameters(model, family.head, "b")
    assert torch.equal(state[f"{family.head}.weight"], head_b[f"{family.head}.weight"])
    assert torch.equal(state[f"{family.head}.neat_saved.a.weight"], saved_parameters(model, family.head, "a")[
        f"{family.head}.weight"])
    plain = family.build()
    result = plain.load_state_dict(neat_core.base_state_dict(model), strict=True)   # a plain model takes it
    assert str(result) == "<All keys matched successfully>"
    assert torch.equal(plain.state_dict()[f"{family.head}.weight"], head_b[f"{family.head}.weight"])
    fresh = family.patch(family.build(), "a")
    family.patch(fresh, "b")
    assert str(fresh.load_state_dict(state)) == "<All keys matched successfully>"
    for name in ("a", "b"):
        neat_core.set_adapter(fresh, name)
        neat_core.set_adapter(model, name)
        torch.testing.assert_close(family.run(fresh), family.run(model), atol=0, rtol=0)


def test_a_state_dict_loads_each_head_into_its_adapter_whichever_adapter_is_active(two):
    family, model, _ = two
    neat_core.set_adapter(model, "a")
    state = model.state_dict()   # a's head under the plain names, b's under neat_saved.b
    fresh = family.patch(family.build(), "a")
    family.patch(fresh, "b")
    neat_core.set_adapter(fresh, "b")
    assert str(fresh.load_state_dict(state)) == "<All keys matched successfully>"
    for name in ("a", "b"):
        assert all(torch.equal(p, q) for p, q in zip(saved_parameters(fresh, family.head, name).values(),
                                                      saved_parameters(model, family.head, name).values())), name
        neat_core.set_adapter(fresh, name)
        neat_core.set_adapter(model, name)
        torch.testing.assert_close(family.run(fresh), family.run(model), atol=0, rtol=0)


def test_mixed_batch_runs_each_sample_through_its_adapters_head(two):
    family, model, alone = two
    names = ["b", "a", "__base__", "b"]
    with torch.no_grad(), neat_core.adapters_per_sample(model, names):
        mixed = family.run(model)
    plain = family.run(family.build())
    for i, name in enumerate(names):
        expected = plain[i] if name == "__base__" else family.run(alone[name])[i]
        torch.testing.assert_close(mixed[i], expected, atol=1e-5, rtol=0)


def test_disabled_runs_the_pretrained_head_and_deleting_keeps_the_other_head(two):
    family, model, alone = two
    with neat_core.disabled(model):
        torch.testing.assert_close(family.run(model), family.run(family.build()), **TOL)
    neat_core.delete_adapter(model, "a")
    assert list(model.get_submodule(family.head).copies) == ["b"] and neat_core.active_adapter(model) == "b"
    torch.testing.assert_close(family.run(model), family.run(alone["b"]), **TOL)
    neat_core.delete_adapter(model, "b")
    assert type(model.get_submodule(family.head)) is type(family.build().get_submodule(family.head))
    torch.testing.assert_close(family.run(model), family.run(family.build()), **TOL)


def test_merge_and_unload_keeps_the_active_adapters_head(two):
    family, model, alone = two
    neat_core.set_adapter(model, "b")
    plain = neat_core.merge_and_unload(model)
    assert not any(isinstance(m, neat_core.NeatLinear) for m in plain.modules())
    assert type(plain.get_submodule(family.head)) is type(family.build().get_submodule(family.head))
    torch.testing.assert_close(family.run(plain), family.run(alone["b"]), atol=1e-5, rtol=0)


def test_loading_into_a_name_in_use_leaves_the_model_bit_identical(two, tmp_path):
    family, model, alone = two
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"^Adapter 'a' already exists on this model"):
        neat_core.load_adapter(model, tmp_path / "b", adapter="a")
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    neat_core.load_adapter(model, tmp_path / "b", adapter="a", replace=True)   # a now holds b's weights and head
    neat_core.set_adapter(model, "a")
    torch.testing.assert_close(family.run(model), family.run(alone["b"]), **TOL)


@pytest.mark.parametrize("export", [neat_core.to_lora, neat_core.to_peft], ids=["to_lora", "to_peft"])
def test_peft_loads_both_exports_into_one_model_and_switches_heads_with_them(tmp_path, export):
    family = FAMILIES["hf-bert"]
    base = family.build()
    model = family.patch(copy.deepcopy(base), "a")
    family.patch(model, "b")
    _train(model, "a", seed=1)
    _train(model, "b", seed=2)
    for name in ("a", "b"):
        export(model, tmp_path / name, adapter=name)
    loaded = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "a", adapter_name="a")
    loaded.load_adapter(tmp_path / "b", adapter_name="b")
    for name in ("b", "a", "b"):
        loaded.set_adapter(name)
        neat_core.set_adapter(model, name)
        torch.testing.assert_close(family.run(loaded), family.run(model), atol=1e-5, rtol=0)
