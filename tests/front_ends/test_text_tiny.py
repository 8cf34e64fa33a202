"""neat_text presets on tiny random-config transformers models (no downloads): every model type and preset."""

from __future__ import annotations


import pytest
import torch
from transformers import (AutoConfig, AutoModelForSequenceClassification)

import neat_core
import neat_text

from support.tiny_text import (INTER, TINY, H, _assert_unchanged, _snapshot, expected_adapter_params, head_params, logits,
                               randomize, tiny_inputs, tiny_model)




# output sizes of the adapted q and v projections (LLMs: 2 key/value heads of 8 -> v is 16 wide)














CASES = [(t, p) for t in TINY for p in ("qv", "neat_s", "neat_l")] + \
        [(t, "paper_llm") for t in ("llama", "mistral", "qwen2", "gemma")]


@pytest.mark.parametrize("model_type,preset", CASES)
def test_preset_counts_identity_and_merge(model_type: str, preset: str) -> None:
    model = tiny_model(model_type)
    inputs = tiny_inputs(model)
    before = logits(model, inputs)
    assert neat_text.patch(model, preset=preset) is model
    assert neat_core.trainable_parameters(model) == expected_adapter_params(model_type, preset) + head_params(model)
    torch.testing.assert_close(logits(model, inputs), before, atol=1e-6, rtol=0)  # identity at init
    randomize(model)
    adapted = logits(model, inputs)
    assert (adapted - before).abs().max() > 1e-2
    neat_core.merge(model)
    torch.testing.assert_close(logits(model, inputs), adapted, atol=1e-5, rtol=1e-5)
    neat_core.unmerge(model)
    with neat_core.disabled(model):
        torch.testing.assert_close(logits(model, inputs), before, atol=1e-6, rtol=0)






def test_unknown_model_type_suggests_targets_and_leaves_model_unchanged() -> None:
    torch.manual_seed(0)
    config = AutoConfig.for_model("albert", hidden_size=H, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=INTER, embedding_size=16, vocab_size=100, num_labels=3)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"no preset for model_type 'albert'.*Pass targets=.*"
                                         r"neat_text.patch\(model, targets=\['query', 'value'\]\)"):
        neat_text.patch(model)
    _assert_unchanged(model, before)
    neat_text.patch(model, targets=["query", "value"], rank=2)  # explicit targets work on any model type
    assert len(list(neat_core.neat_layers(model))) == 2  # ALBERT shares one layer across depth
    assert model.classifier.weight.requires_grad


@pytest.mark.parametrize("model_type,kwargs,message", [
    ("bert", {"preset": "nope"}, "Unknown neat_text preset 'nope'; choose one of qv, neat_s, neat_l, paper_llm"),
    ("bert", {"preset": "paper_llm"}, "preset 'paper_llm' is for decoder LLMs .* not model_type 'bert'"),
    ("bert", {"config": neat_core.NeatConfig(targets=["query"]), "preset": "qv"}, "either config= or preset="),
    ("bert", {"targets": ["nothing_here"]}, "NEAT target 'nothing_here' matches no linear layer"),
    ("gpt2", {"rank": 0}, "NeatConfig.rank must be a positive integer"),
])
def test_bad_input_raises_and_leaves_model_unchanged(model_type: str, kwargs: dict, message: str) -> None:
    model = tiny_model(model_type)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message):
        neat_text.patch(model, **kwargs)
    _assert_unchanged(model, before)


def test_neat_s_takes_the_last_two_thirds_of_the_layers() -> None:
    twelve = tiny_model("bert", num_hidden_layers=12)
    assert neat_text.preset_fields(twelve, "neat_s")["layers"] == list(range(4, 12))  # the paper's layers 4-11
    model = tiny_model("roberta")
    neat_text.patch(model, preset="neat_s")
    assert [n for n, _ in neat_core.neat_layers(model)] == [
        f"roberta.encoder.layer.{i}.attention.self.{p}" for i in (1, 2) for p in ("query", "value")]
    assert neat_core.adapter_configs(model)["default"].rank == 1


def test_fields_override_the_preset_and_train_head_false_freezes_the_head() -> None:
    model = tiny_model("distilbert")
    neat_text.patch(model, preset="neat_s", rank=2, depth=4, train_head=False)
    config = neat_core.adapter_configs(model)["default"]
    assert (config.rank, config.depth, config.modules_to_save) == (2, 4, [])
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".neat." not in n)
    other = tiny_model("distilbert")
    neat_text.patch(other)
    assert neat_text.head_names(other) == ["pre_classifier", "classifier"]  # DistilBERT's head is both
    assert other.pre_classifier.weight.requires_grad and other.classifier.weight.requires_grad


def test_gpt2_conv1d_q_and_v_slices_match_the_formula_and_leave_k_alone() -> None:
    model = tiny_model("gpt2")
    neat_text.patch(model, rank=4)
    randomize(model)
    layer = model.transformer.h[0].attn.c_attn
    assert layer.fan_in_fan_out and layer.neat["default"].A.shape == (2, H, 4)  # q and v networks, dim H each
    weight, bias, net = layer.base_layer.weight, layer.base_layer.bias, layer.neat["default"]  # weight: in x out
    x = torch.randn(2, 5, H, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = list((x @ weight + bias).split(H, dim=-1))
        for s, block in enumerate((0, 2)):
            w0 = weight[:, block * H:(block + 1) * H]  # the paper's W0 (in x out) is GPT-2's stored layout
            expected[block] = expected[block] + (x @ torch.relu(w0 @ net.A[s])) @ net.B[s]
        torch.testing.assert_close(layer(x), torch.cat(expected, -1), atol=1e-5, rtol=1e-5)
        assert torch.equal(layer(x)[..., H:2 * H], layer.base_layer(x)[..., H:2 * H])  # k untouched


def test_gpt2_conv1d_adapter_saves_loads_and_unmerges_exactly(tmp_path) -> None:
    model = neat_text.patch(tiny_model("gpt2"), rank=3, depth=4)
    randomize(model)
    inputs = tiny_inputs(model)
    stored = model.transformer.h[1].attn.c_attn.base_layer.weight.clone()
    neat_core.save_adapter(model, tmp_path)
    other = neat_core.load_adapter(tiny_model("gpt2"), tmp_path)
    torch.testing.assert_close(logits(other, inputs), logits(model, inputs), atol=0, rtol=0)
    neat_core.merge(model, safe_merge=True)
    assert model.transformer.h[1].attn.c_attn.base_layer.weight.shape == (H, 3 * H)  # still stored in x out
    neat_core.unmerge(model)
    assert torch.equal(model.transformer.h[1].attn.c_attn.base_layer.weight, stored)
    unloaded = neat_core.merge_and_unload(other)
    assert type(unloaded.transformer.h[1].attn.c_attn).__name__ == "Conv1D"
