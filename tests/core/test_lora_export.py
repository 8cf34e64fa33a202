"""neat_core.to_lora: NEAT adapters written as PEFT LoRA folders that the installed PEFT loads with equal outputs."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import pytest
import torch
from conftest import make_tiny, randomize_adapters, tiny_vit
from safetensors import safe_open
from safetensors.torch import load_file
from support.tiny_text import TINY, _assert_unchanged, _snapshot, logits, tiny_inputs, tiny_model
from transformers import AutoConfig, AutoModelForCausalLM

import neat_core
import neat_text
import neat_vision
from neat_core.inject import saved_parameters
from neat_core.lora_export import lora_factors

import peft

PREFIX = "base_model.model."


def _train(model: torch.nn.Module, std: float = 0.2) -> torch.nn.Module:
    """Stand-in for training: random adapters and a changed head (so a head missing from the export shows)."""
    randomize_adapters(model, std=std)
    config = neat_core.adapter_configs(model)[neat_core.active_adapter(model)]
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for head in config.modules_to_save:
            for p in saved_parameters(model, head).values():   # the adapter's own copy
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def _peft(base: torch.nn.Module, folder) -> torch.nn.Module:
    """PEFT's own loader, with any warning (unknown config keys, missing or unexpected tensors) an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' own deprecations
        return peft.PeftModel.from_pretrained(copy.deepcopy(base), folder).eval()


def _vit_outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def _config(folder) -> dict:
    return json.loads((folder / "adapter_config.json").read_text())


# (front end, model, patch fields) -> expected (r, rank_pattern, target_modules, fan_in_fan_out, modules_to_save)
VISION = [
    (dict(rank=4), (8, {}, ["qkv"], False, ["head"])),  # q, v slices of attn.qkv: rank 2r
    (dict(preset="qv_mlp", rank=3, depth=6, activation="sin", scale=0.5),
     (6, {"fc1": 3, "fc2": 3}, ["fc1", "fc2", "qkv"], False, ["head"])),
    (dict(rank=2, depth=4, orientation="in", compute="materialized"), (4, {}, ["qkv"], False, ["head"])),
]
TEXT = [
    ("bert", dict(rank=4, depth=4, activation="gelu", orientation="in"), (4, {}, ["query", "value"], False,
                                                                         ["classifier"])),
    ("llama", dict(preset="paper_llm"), (32, {}, ["down_proj", "k_proj", "q_proj", "up_proj", "v_proj"], False,
                                         ["score"])),
    ("gpt2", dict(rank=3, depth=6, activation="sin", scale=2.0), (6, {}, ["c_attn"], True, ["score"])),  # Conv1D
    ("distilbert", dict(rank=2), (2, {}, ["q_lin", "v_lin"], False, ["pre_classifier", "classifier"])),
    ("roberta", dict(rank=2, layers=[1]), (2, {}, [f"roberta.encoder.layer.1.attention.self.{p}"
                                                   for p in ("query", "value")], False, ["classifier"])),
]


def _check_config(folder, expected) -> None:
    written = _config(folder)
    r, pattern, targets, fan_in_fan_out, heads = expected
    assert (written["r"], written["lora_alpha"], written["rank_pattern"], written["alpha_pattern"]) == \
        (r, r, pattern, pattern)  # scaling lora_alpha / r = 1 for every module
    assert (written["target_modules"], written["fan_in_fan_out"], written["modules_to_save"]) == \
        (targets, fan_in_fan_out, heads)
    assert (written["peft_type"], written["use_rslora"], written["use_dora"], written["bias"]) == \
        ("LORA", False, False, "none")
    assert set(written) <= {f.name for f in dataclasses.fields(peft.LoraConfig)}


@pytest.mark.parametrize("fields,expected", VISION)
def test_peft_loads_timm_export_with_equal_outputs(tmp_path, fields, expected) -> None:
    base = tiny_vit()
    ours = _train(neat_vision.patch(copy.deepcopy(base), **fields))
    neat_core.to_lora(ours, tmp_path)
    _check_config(tmp_path, expected)
    expected_out = _vit_outputs(ours)
    assert (expected_out - _vit_outputs(base)).abs().max() > 1e-2  # the adapter matters
    torch.testing.assert_close(_vit_outputs(_peft(base, tmp_path)), expected_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type,fields,expected", TEXT)
def test_peft_loads_transformers_export_with_equal_outputs(tmp_path, model_type, fields, expected) -> None:
    base = tiny_model(model_type)
    ours = _train(neat_text.patch(copy.deepcopy(base), **fields), std=0.1)
    neat_core.to_lora(ours, tmp_path)
    _check_config(tmp_path, expected)
    inputs = tiny_inputs(base)
    expected_out = logits(ours, inputs)
    assert (expected_out - logits(base, inputs)).abs().max() > 1e-2
    torch.testing.assert_close(logits(_peft(base, tmp_path), inputs), expected_out, atol=1e-5, rtol=0)


def test_llm_export_is_what_vllm_reads(tmp_path) -> None:
    """A causal LM with the paper's LLM recipe: one rank (32) everywhere, scaling 1, no modules_to_save."""
    torch.manual_seed(0)
    config = AutoConfig.for_model("llama", initializer_range=0.2, **TINY["llama"])
    base = AutoModelForCausalLM.from_config(config).eval()
    ours = _train(neat_text.patch(copy.deepcopy(base), preset="paper_llm"), std=0.1)
    neat_core.to_lora(ours, tmp_path)
    _check_config(tmp_path, (32, {}, ["down_proj", "k_proj", "q_proj", "up_proj", "v_proj"], False, None))
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    assert len(tensors) == 2 * 5 * len(base.model.layers)
    assert tensors[f"{PREFIX}model.layers.0.mlp.down_proj.lora_A.weight"].shape == (32, 64)
    assert tensors[f"{PREFIX}model.layers.0.self_attn.v_proj.lora_B.weight"].shape == (16, 32)
    inputs = tiny_inputs(base)
    torch.testing.assert_close(logits(_peft(base, tmp_path), inputs), logits(ours, inputs), atol=1e-5, rtol=0)


def test_factors_are_the_neat_update_with_zero_rows_for_untouched_blocks(tmp_path) -> None:
    ours = _train(neat_vision.patch(tiny_vit(), rank=4, depth=4))
    neat_core.to_lora(ours, tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    layer = ours.blocks[1].attn.qkv
    lora_a, lora_b = (tensors[f"{PREFIX}blocks.1.attn.qkv.lora_{x}.weight"] for x in "AB")
    assert (lora_a.shape, lora_b.shape) == ((8, 192), (576, 8))
    assert torch.equal(lora_b[192:384], torch.zeros(192, 8))  # k rows: untouched
    assert torch.equal(lora_b[:192, 4:], torch.zeros(192, 4)) and torch.equal(lora_b[384:, :4], torch.zeros(192, 4))
    torch.testing.assert_close(lora_b @ lora_a, layer.delta_weight("default"), atol=1e-6, rtol=0)
    assert torch.equal(tensors[f"{PREFIX}head.weight"], ours.head.weight)
    assert sorted(k.rpartition(".lora_")[0] for k in tensors if k.endswith("lora_A.weight")) == \
        [f"{PREFIX}blocks.{i}.attn.qkv" for i in range(2)]


def test_half_precision_base_exports_fp32_factors_of_its_weight(tmp_path) -> None:
    ours = _train(neat_text.patch(tiny_model("gpt2").to(torch.bfloat16), rank=2, depth=4))
    neat_core.to_lora(ours, tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    layer = ours.transformer.h[0].attn.c_attn
    lora_a, lora_b = (tensors[f"{PREFIX}transformer.h.0.attn.c_attn.lora_{x}.weight"] for x in "AB")
    assert lora_a.dtype == lora_b.dtype == torch.float32
    assert tensors[f"{PREFIX}score.weight"].dtype == torch.float32  # the trained head copy stays fp32
    torch.testing.assert_close(lora_b @ lora_a, layer.delta_weight("default"), atol=1e-6, rtol=0)
    assert torch.equal(lora_a, lora_factors(layer, "default")[0])


def test_neat_provenance_is_kept_beside_a_plain_lora_config(tmp_path) -> None:
    ours = _train(neat_vision.patch(tiny_vit(), rank=3, depth=6, activation="sin", scale=0.5))
    neat_core.to_lora(ours, tmp_path)
    config = neat_core.adapter_configs(ours)["default"]
    info = json.loads((tmp_path / "neat_export.json").read_text())
    assert (info["exported_from"], info["adapter"], info["lora_rank"], info["model_class"]) == \
        ("neat-peft", "default", 6, "VisionTransformer")
    assert neat_core.NeatConfig.from_dict(info["neat_config"]) == config
    with safe_open(tmp_path / "adapter_model.safetensors", framework="pt") as f:
        meta = f.metadata()
    assert (meta["format"], meta["exported_from"]) == ("pt", "neat-peft")
    assert neat_core.NeatConfig.from_json(meta["neat_config"]) == config
    assert _config(tmp_path)["base_model_name_or_path"] == info["base_model"] == \
        "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


def test_merged_model_exports_the_same_adapter(tmp_path) -> None:
    base = tiny_model("bert")
    ours = _train(neat_text.patch(copy.deepcopy(base), rank=4, depth=4, orientation="in"), std=0.1)
    neat_core.to_lora(ours, tmp_path / "unmerged")
    neat_core.merge(ours)
    neat_core.to_lora(ours, tmp_path / "merged")
    first, second = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("unmerged", "merged"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    inputs = tiny_inputs(base)
    torch.testing.assert_close(logits(_peft(base, tmp_path / "merged"), inputs), logits(ours, inputs),
                               atol=1e-5, rtol=0)


def test_a_named_adapter_other_than_the_active_one(tmp_path) -> None:
    base = tiny_model("bert")
    ours = neat_text.patch(copy.deepcopy(base), rank=2)
    neat_core.inject(ours, neat_core.NeatConfig(targets=["key"], rank=3, activation="tanh"), adapter="second")
    _train(ours, std=0.1)  # randomizes every adapter
    neat_core.set_adapter(ours, "default")
    neat_core.to_lora(ours, tmp_path, adapter="second")
    assert _config(tmp_path)["target_modules"] == ["key"]
    neat_core.set_adapter(ours, "second")
    inputs = tiny_inputs(base)
    torch.testing.assert_close(logits(_peft(base, tmp_path), inputs), logits(ours, inputs), atol=1e-5, rtol=0)


def test_per_module_ranks_by_full_name_when_short_names_are_ambiguous(tmp_path) -> None:
    base = make_tiny()
    slices = {"blocks.0.qkv": {"num_blocks": 3, "blocks": [0, 2]}}
    ours = neat_core.inject(copy.deepcopy(base), neat_core.NeatConfig(targets=["qkv", "proj"], rank=2,
                                                                      slices=slices))
    _train(ours)
    neat_core.to_lora(ours, tmp_path)
    written = _config(tmp_path)
    assert (written["r"], written["rank_pattern"], written["target_modules"]) == \
        (4, {r"blocks\.1\.qkv": 2, "proj": 2}, ["proj", "qkv"])
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ours(x)
        assert (expected - base(x)).abs().max() > 1e-2
        torch.testing.assert_close(_peft(base, tmp_path)(x), expected, atol=1e-5, rtol=0)


def _no_adapter_left() -> torch.nn.Module:
    model = neat_text.patch(tiny_model("bert"), rank=2)
    neat_core.delete_adapter(model, "default")
    return model


def _nested_head_name() -> torch.nn.Module:
    """A NEAT layer `block.head` beside a saved `head`: PEFT matches modules_to_save by suffix, so it would not
    adapt `block.head`."""
    model = torch.nn.Module()
    model.block, model.head = torch.nn.Module(), torch.nn.Linear(4, 3)
    model.block.head = torch.nn.Linear(4, 4)
    return neat_core.inject(model, neat_core.NeatConfig(targets=["block.head"], rank=2, modules_to_save=["head"]))


@pytest.mark.parametrize("make,kwargs,error,message", [
    (lambda: tiny_model("bert"), {}, ValueError,
     "This BertForSequenceClassification has no NEAT layers, so there is no NEAT adapter to export"),
    (_no_adapter_left, {}, ValueError, "has NEAT layers but no NEAT adapter"),
    (lambda: neat_text.patch(tiny_model("bert"), rank=2), {"adapter": "nope"}, ValueError,
     r"No adapter named 'nope' to export; this model has \['default'\]"),
    (_nested_head_name, {}, ValueError, "PEFT cannot put LoRA on block.head: it lies inside a module of "
     r"modules_to_save \(head\), which PEFT trains whole"),
    (lambda: {"not": "a model"}, {}, TypeError, "to_lora exports an adapter of an nn.Module, got dict"),
])
def test_bad_input_raises_and_writes_nothing(tmp_path, make, kwargs, error, message) -> None:
    model = make()
    before = _snapshot(model) if isinstance(model, torch.nn.Module) and not neat_core.adapter_configs(model) else None
    with pytest.raises(error, match=message):
        neat_core.to_lora(model, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
    if before is not None:
        _assert_unchanged(model, before)


def test_out_dir_that_is_a_file_is_refused(tmp_path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(ValueError, match="is a file; to_lora writes a folder"):
        neat_core.to_lora(neat_text.patch(tiny_model("bert"), rank=2), target)
    assert target.read_text() == "keep me"


def test_a_failed_write_leaves_the_previous_export_whole(tmp_path, monkeypatch) -> None:
    ours = _train(neat_text.patch(tiny_model("bert"), rank=2))
    neat_core.to_lora(ours, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    randomize_adapters(ours, seed=5)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("neat_core.lora_export.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        neat_core.to_lora(ours, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files, nothing changed


def test_a_head_built_after_patching_is_exported_as_save_adapter_saves_it(tmp_path) -> None:
    base = tiny_vit()
    ours = neat_vision.patch(copy.deepcopy(base), rank=3, train_head=False)
    ours.reset_classifier(7)  # trains, but is not in the adapter's modules_to_save
    base.reset_classifier(7)  # another random head: the export must carry ours
    _train(ours)
    with torch.no_grad():
        ours.head.weight.add_(0.3)
    neat_core.to_lora(ours, tmp_path)
    assert _config(tmp_path)["modules_to_save"] == ["head"]
    assert {f"{PREFIX}head.weight", f"{PREFIX}head.bias"} <= set(load_file(tmp_path / "adapter_model.safetensors"))
    torch.testing.assert_close(_vit_outputs(_peft(base, tmp_path)), _vit_outputs(ours), atol=1e-5, rtol=0)
    assert neat_core.adapter_configs(ours)["default"].modules_to_save == []  # the export does not change the model


def test_a_trained_parameter_outside_any_module_is_refused(tmp_path) -> None:
    ours = neat_vision.patch(tiny_vit(), rank=3)
    ours.pos_embed.requires_grad_(True)
    with pytest.raises(ValueError, match=r"^PEFT's LoRA cannot carry the trained parameter pos_embed \(PEFT's "
                                         r"modules_to_save names modules, not parameters\): freeze it"):
        neat_core.to_lora(ours, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- several adapters combined into one LoRA folder ---------------------------------------------------------------
def _two_vit_adapters(train_head: bool = True) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(base, a ViT with adapter "a" (q, v slices; its own head unless train_head=False) and "b" (qkv and fc1,
    deeper, sin; no head))."""
    base = tiny_vit()
    ours = neat_vision.patch(copy.deepcopy(base), rank=3, adapter="a", train_head=train_head)
    neat_core.inject(ours, neat_core.NeatConfig(rank=2, depth=4, activation="sin", targets=["attn.qkv", "mlp.fc1"]),
                     adapter="b")
    neat_core.set_adapter(ours, "a")
    return base, _train(ours)


def _reference(base: torch.nn.Module, ours: torch.nn.Module, weights: dict[str, float]) -> torch.nn.Module:
    """The plain model with W + sum_i w_i dW_i in every adapted layer and adapter "a"'s head."""
    reference = copy.deepcopy(base)
    with torch.no_grad():
        for name, layer in neat_core.neat_layers(ours):
            update = sum(w * layer.delta_weight(a) for a, w in weights.items() if a in layer.neat)
            reference.get_submodule(name).weight.add_(update)
        for k, p in saved_parameters(ours, "head", "a").items():
            reference.get_parameter(k).copy_(p)
    return reference.eval()


@pytest.mark.parametrize("weights", [{"a": 0.7, "b": -0.4}, {"a": 1.0, "b": 1.0}, {"b": 2.0}])
def test_weighted_combination_is_exact_layer_by_layer_and_peft_loads_it(tmp_path, weights) -> None:
    base, ours = _two_vit_adapters()
    neat_core.weighted_to_lora(ours, tmp_path, weights, head_from="a")
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    for name, layer in neat_core.neat_layers(ours):
        present = [a for a in weights if a in layer.neat]
        if not present:
            assert f"{PREFIX}{name}.lora_A.weight" not in tensors
            continue
        lora_a, lora_b = (tensors[f"{PREFIX}{name}.lora_{x}.weight"] for x in "AB")
        assert lora_a.shape[0] == sum(lora_factors(layer, a)[0].shape[0] for a in present)   # ranks add up
        expected = sum(w * layer.delta_weight(a) for a, w in weights.items() if a in layer.neat)
        torch.testing.assert_close(lora_b @ lora_a, expected, atol=1e-6, rtol=0)
    reference = _reference(base, ours, weights)
    assert (_vit_outputs(reference) - _vit_outputs(base)).abs().max() > 1e-2
    torch.testing.assert_close(_vit_outputs(_peft(base, tmp_path)), _vit_outputs(reference), atol=1e-5, rtol=0)
    info = json.loads((tmp_path / "neat_export.json").read_text())
    assert (info["adapters"], info["head_from"]) == (weights, "a")


def test_combination_without_heads_needs_no_head_choice(tmp_path) -> None:
    base, ours = _two_vit_adapters(train_head=False)
    neat_core.weighted_to_lora(ours, tmp_path, {"a": 0.5, "b": 0.5})
    assert _config(tmp_path)["modules_to_save"] is None
    reference = copy.deepcopy(base)
    with torch.no_grad():
        for name, layer in neat_core.neat_layers(ours):
            reference.get_submodule(name).weight.add_(
                sum(0.5 * layer.delta_weight(a) for a in ("a", "b") if a in layer.neat))
    torch.testing.assert_close(_vit_outputs(_peft(base, tmp_path)), _vit_outputs(reference.eval()), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(weights={"a": 0.5, "b": 0.5}), "Adapter(s) 'a' train their own head (modules_to_save); a LoRA folder "
     "carries one: pass head_from='<adapter>' to export that adapter's head with the combined update."),
    (dict(weights={"a": 1.0, "c": 1.0}, head_from="a"), "No adapter named 'c' to combine; this model has ['a', 'b']."),
    (dict(weights={"a": float("nan")}, head_from="a"), "The weight of adapter 'a' must be a finite number, got nan."),
    (dict(weights={}, head_from="a"), "weights maps adapter names to their weights (e.g. {'a': 0.5, 'b': 0.5}), "
     "got {}."),
    (dict(weights={"a": 1.0}, head_from="z"), "head_from='z' names no adapter of this model; it has ['a', 'b']."),
])
def test_bad_combinations_are_refused_and_write_nothing(tmp_path, kwargs, message) -> None:
    _, ours = _two_vit_adapters()
    with pytest.raises(ValueError) as err:
        neat_core.weighted_to_lora(ours, tmp_path / "out", **kwargs)
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


def test_print_trainable_parameters_prints_peft_s_line(capsys) -> None:
    model = neat_vision.patch(tiny_vit(), rank=4)
    trainable = neat_core.trainable_parameters(model)
    total = sum(p.numel() for p in model.parameters())
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if ".neat." in n or ".copies." in n)
    neat_core.print_trainable_parameters(model)
    assert capsys.readouterr().out == (f"trainable params: {trainable:,d} || all params: {total:,d} || "
                                       f"trainable%: {100 * trainable / total:.4f}\n")
