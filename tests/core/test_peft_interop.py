"""neat_core.to_peft / from_peft against the installed PEFT's PEANuT: same outputs, lossless round trips."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from support.tiny_text import _assert_unchanged, _snapshot, logits, tiny_inputs, tiny_model  # noqa: F401

import neat_core
import neat_text

import peft

QV = {"bert": ["query", "value"], "llama": ["q_proj", "v_proj"]}
HEAD = {"bert": "classifier", "llama": "score"}


def _randomize_trainable(model: torch.nn.Module, std: float = 0.3, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def _ours(model_type: str, **fields) -> tuple[torch.nn.Module, torch.nn.Module]:
    base = tiny_model(model_type)
    model = neat_text.patch(copy.deepcopy(base), **fields)
    _randomize_trainable(model)
    return base, model


@pytest.mark.parametrize("model_type,fields,peft_depth", [
    ("bert", dict(rank=4, depth=2), 0),
    ("bert", dict(preset="neat_s", depth=4, activation="gelu", scale=0.5), 1),
    ("llama", dict(rank=4, depth=6, activation="silu", scale=2.0), 2),
    ("llama", dict(rank=3, depth=4, activation="tanh", exclude=["model.layers.0.self_attn.v_proj"]), 1),
    ("distilbert", dict(rank=2, activation="identity"), 0),  # head: pre_classifier + classifier
])
def test_peft_loads_our_export_with_equal_outputs(tmp_path, model_type, fields, peft_depth) -> None:
    base, ours = _ours(model_type, **fields)
    inputs = tiny_inputs(base)
    neat_core.to_peft(ours, tmp_path)
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    config = neat_core.adapter_configs(ours)["default"]
    assert (written["peft_type"], written["r"], written["depth"], written["scaling"]) == \
        ("PEANUT", config.rank, peft_depth, config.scale)
    assert written["modules_to_save"] == neat_text.head_names(base)
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()
    expected = logits(ours, inputs)
    assert (expected - logits(base, inputs)).abs().max() > 1e-2  # the adapter matters
    torch.testing.assert_close(logits(peft_model, inputs), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type,targets", [("bert", None), ("llama", None), ("bert", r".*\.(query|value)")])
def test_our_import_of_a_peft_adapter_gives_peft_outputs(tmp_path, model_type, targets) -> None:
    base = tiny_model(model_type)
    cfg = peft.PeanutConfig(r=4, depth=1, act_fn="relu", scaling=0.7, init_weights=False,
                            target_modules=targets or QV[model_type], modules_to_save=[HEAD[model_type]])
    peft_model = peft.get_peft_model(copy.deepcopy(base), cfg).eval()
    _randomize_trainable(peft_model)
    peft_model.save_pretrained(tmp_path)
    ours = neat_core.from_peft(copy.deepcopy(base), tmp_path)
    config = neat_core.adapter_configs(ours)["default"]
    assert (config.rank, config.depth, config.scale, config.orientation) == (4, 4, 0.7, "out")
    assert (config.targets, config.modules_to_save) == ([targets] if targets else sorted(QV[model_type]),
                                                         [HEAD[model_type]])
    inputs = tiny_inputs(base)
    torch.testing.assert_close(logits(ours, inputs), logits(peft_model, inputs), atol=1e-5, rtol=0)


def test_ours_to_peft_to_ours_and_back_is_lossless(tmp_path) -> None:
    base, ours = _ours("bert", rank=4, depth=4, activation="gelu", scale=0.5, layers=[1])
    neat_core.to_peft(ours, tmp_path / "a")
    back = neat_core.from_peft(copy.deepcopy(base), tmp_path / "a")
    assert neat_core.adapter_configs(back)["default"].structure() == neat_core.adapter_configs(ours)["default"].replace(
        targets=["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"],
        layers=None, layers_pattern=None).structure()
    mine, theirs = ours.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    neat_core.to_peft(back, tmp_path / "b")
    first, second = load_file(tmp_path / "a" / "adapter_model.safetensors"), \
        load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert "base_model.model.bert.encoder.layer.1.attention.self.query.peanut_encoders.0.weight" in first


@pytest.mark.parametrize("model_type,fields,feature", [
    ("bert", dict(orientation="in"), "orientation='in'"),
    ("bert", dict(activation="sin"), "activation='sin'"),
    ("bert", dict(slices={"query": {"num_blocks": 2, "blocks": [0]}}), "fused-output slices"),
    ("gpt2", dict(), "fused-output slices.*Conv1D layers"),
    ("gpt2", dict(targets=["c_proj"]), "Conv1D layers .*supports nn.Linear only"),
])
def test_export_refuses_what_peft_cannot_express(tmp_path, model_type, fields, feature) -> None:
    _, ours = _ours(model_type, **fields)
    with pytest.raises(ValueError, match=f"PEFT's PEANuT cannot express adapter 'default': .*{feature}"):
        neat_core.to_peft(ours, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_merged_adapter(tmp_path) -> None:
    _, ours = _ours("bert", rank=4)
    neat_core.merge(ours)
    with pytest.raises(ValueError, match=r"merged into the weights; call neat_core.unmerge\(model\) before to_peft"):
        neat_core.to_peft(ours, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_refuses_other_adapters_and_leaves_model_unchanged(tmp_path) -> None:
    base, ours = _ours("bert", rank=4)
    neat_core.to_peft(ours, tmp_path)
    llama = tiny_model("llama")
    before = _snapshot(llama)
    with pytest.raises(ValueError, match="PEFT adapter's layers .* are not all linear layers of this "
                                         "LlamaForSequenceClassification"):
        neat_core.from_peft(llama, tmp_path)
    _assert_unchanged(llama, before)

    config_file = tmp_path / "adapter_config.json"
    written = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**written, "act_fn": "gelu_new"}))
    with pytest.raises(ValueError, match="PEFT act_fn 'gelu_new' .* has no exact NEAT activation"):
        neat_core.from_peft(copy.deepcopy(base), tmp_path)
    config_file.write_text(json.dumps({**written, "peft_type": "LORA"}))
    with pytest.raises(ValueError, match="describes a LORA adapter; neat_core.from_peft reads PEFT PEANuT"):
        neat_core.from_peft(copy.deepcopy(base), tmp_path)
    config_file.write_text(json.dumps({**written, "r": 5}))
    fresh = copy.deepcopy(base)
    before = _snapshot(fresh)
    with pytest.raises(ValueError, match=r"does not fit this BertForSequenceClassification: .*neat.A: file has "
                                         r"\(1, 32, 4\), model needs \(1, 32, 5\)"):
        neat_core.from_peft(fresh, tmp_path)
    _assert_unchanged(fresh, before)
    with pytest.raises(FileNotFoundError, match="No adapter_config.json in .*expected a PEFT PEANuT adapter folder"):
        neat_core.from_peft(copy.deepcopy(base), tmp_path / "missing")


def test_neat_core_imports_neither_transformers_nor_peft() -> None:
    code = "import sys, neat_core; print(sorted({'transformers', 'peft'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
