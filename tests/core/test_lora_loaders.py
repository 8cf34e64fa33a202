"""`to_lora` folders load through the loaders PEFT and transformers users reach for, with the installed versions:
`peft.AutoPeftModelFor...` (task_type and base_model_name_or_path in the config) and transformers'
`model.load_adapter` + `set_adapter`; outputs equal the NEAT model's within 1e-5."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

import neat_core
import neat_text
from neat_core.inject import saved_parameters

from support.tiny_llama import tiny_llama
from support.tiny_text import tiny_inputs, tiny_model

import peft

CASES = {   # model kind -> (build, transformers auto class, PEFT auto class, PEFT task_type, patch fields)
    "llama": (tiny_llama, AutoModelForCausalLM, peft.AutoPeftModelForCausalLM, "CAUSAL_LM",
              dict(preset="paper_llm", rank=4)),
    "bert": (lambda: tiny_model("bert"), AutoModelForSequenceClassification,
             peft.AutoPeftModelForSequenceClassification, "SEQ_CLS", dict(rank=4, depth=4)),
}


def _inputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    if model.config.model_type == "llama":
        return {"input_ids": torch.randint(1, 64, (2, 7), generator=torch.Generator().manual_seed(0))}
    return tiny_inputs(model)


def _logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits


def _trained(kind: str, base_dir, adapter: str = "default", seed: int = 1) -> torch.nn.Module:
    build, auto, _, _, fields = CASES[kind]
    model = neat_text.patch(auto.from_pretrained(base_dir), adapter=adapter, **fields)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in neat_core.neat_layers(model):
            for p in layer.neat[adapter].parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        for head in neat_core.adapter_configs(model)[adapter].modules_to_save:
            for p in saved_parameters(model, head, adapter).values():
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


@pytest.fixture(params=list(CASES))
def exported(request, tmp_path):
    """(kind, the saved base folder, the NEAT model, its to_lora folder)."""
    kind = request.param
    CASES[kind][0]().save_pretrained(tmp_path / "base")
    model = _trained(kind, tmp_path / "base")
    neat_core.to_lora(model, tmp_path / "lora")
    return kind, tmp_path / "base", model, tmp_path / "lora"


def test_the_config_names_the_task_and_the_base(exported):
    kind, base_dir, model, folder = exported
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["task_type"], config["base_model_name_or_path"]) == (CASES[kind][3], str(base_dir))


def test_peft_auto_class_loads_the_folder_alone(exported):
    kind, base_dir, model, folder = exported
    inputs = _inputs(model)
    plain = _logits(CASES[kind][1].from_pretrained(base_dir), inputs)
    ours = _logits(model, inputs)
    assert (ours - plain).abs().max() > 1e-2   # the adapter changes the outputs
    loaded = CASES[kind][2].from_pretrained(folder)
    torch.testing.assert_close(_logits(loaded, inputs), ours, atol=1e-5, rtol=0)


def test_transformers_load_adapter_and_set_adapter_switch_between_two_exports(exported, tmp_path):
    kind, base_dir, model, folder = exported
    other = _trained(kind, base_dir, adapter="other", seed=7)
    neat_core.to_lora(other, tmp_path / "other", adapter="other")
    inputs = _inputs(model)
    native = CASES[kind][1].from_pretrained(base_dir)
    native.load_adapter(str(folder), adapter_name="first")
    native.load_adapter(str(tmp_path / "other"), adapter_name="second")
    for name, expected in [("first", model), ("second", other), ("first", model)]:
        native.set_adapter(name)
        torch.testing.assert_close(_logits(native, inputs), _logits(expected, inputs), atol=1e-5, rtol=0)


def test_an_explicit_base_name_is_written(exported, tmp_path):
    kind, base_dir, model, folder = exported
    neat_core.to_lora(model, tmp_path / "named", base_model_name_or_path="org/base-model")
    config = json.loads((tmp_path / "named" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/base-model"
