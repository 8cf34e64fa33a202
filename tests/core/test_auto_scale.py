"""NeatConfig(scale="auto"): per layer and slice, rms(s * H) at init equals LoRA's rms(A) = 1/sqrt(3 * in), whatever
the weight's scale, depth, activation and orientation; the computed scales are stored in the adapter and survive
save/load (never recomputed), state dicts, merge, to_peft and to_lora exactly."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from conftest import make_tiny, randomize_adapters, tiny_vit
from support.tiny_text import logits, tiny_inputs, tiny_model

import neat_core
import neat_text
import neat_vision
from neat_core import NeatConfig
from neat_core.layer import NeatLinear
from neat_core.network import ACTIVATIONS

import peft

FUSED_QV = {"qkv": {"num_blocks": 3, "blocks": [0, 2]}}


def _scaled_tiny(std: float, dim: int = 24, seed: int = 0) -> torch.nn.Module:
    """TinyNet with every linear weight drawn N(0, std^2), as pretrained weights of different scales."""
    model = make_tiny(seed, dim=dim)
    gen = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
    return model


def _network_output(net, k: int, rows: torch.Tensor, activation: str) -> torch.Tensor:
    """H = f(rows) of the k-th stacked network, written out from the paper's definition (independent of
    NeatNetwork.hidden): sigma(rows A), then the encoder layers, then the decoder layers with mirrored residuals."""
    act = ACTIVATIONS[activation]
    with torch.no_grad():
        h = act(rows @ net.A[k])
        skips = []
        for enc in net.encoders:
            skips.append(h)
            h = act(h @ enc[k])
        for dec in net.decoders:
            h = act(h @ dec[k]) + skips.pop()
    return h


def _hidden_per_slice(layer, config: NeatConfig) -> list[torch.Tensor]:
    """H of every adapted slice at init, from the layer's weight (fp32) and its network's parameters."""
    weight = layer.base_layer.weight.detach().float()
    spec = layer.settings["default"].slices
    blocks = weight.unflatten(0, (spec.num_blocks, -1))
    found = []
    for k, block in enumerate(spec.blocks):
        rows = blocks[block].t() if config.orientation == "out" else blocks[block]
        found.append(_network_output(layer.neat["default"], k, rows, config.activation))
    return found


@pytest.mark.parametrize("std", [0.002, 0.02, 0.2])
@pytest.mark.parametrize("fields", [
    dict(depth=2, activation="relu", orientation="out"),
    dict(depth=4, activation="sin", orientation="out"),
    dict(depth=6, activation="gelu", orientation="in"),
    dict(depth=2, activation="tanh", orientation="in", slices=FUSED_QV),
])
def test_rms_of_s_times_h_is_loras_rms_of_a_on_weights_of_any_scale(std, fields):
    model = _scaled_tiny(std)
    config = NeatConfig(rank=4, scale="auto", targets=["qkv", "proj"], **fields)
    neat_core.inject(model, config)
    layers = dict(neat_core.neat_layers(model))
    assert len(layers) == 4
    for name, layer in layers.items():
        lora_rms = 1 / math.sqrt(3 * layer.in_features)   # PEFT's lora_A: Kaiming-uniform a=sqrt(5), bound 1/sqrt(in)
        lora_a = torch.nn.Linear(layer.in_features, 4).weight   # torch's init of an r x in factor, as PEFT's
        assert lora_a.pow(2).mean().sqrt().item() == pytest.approx(lora_rms, rel=0.1)
        scales = layer.neat["default"].scales
        hidden = _hidden_per_slice(layer, config)
        assert scales.shape == (len(hidden),)
        for s, h in zip(scales, hidden):
            assert (s * h).pow(2).mean().sqrt().item() == pytest.approx(lora_rms, rel=0.05), name


def test_with_relu_the_scale_follows_the_weights_size_exactly():
    """H is positively homogeneous in W0 for ReLU (any depth), so weights 100x smaller need s 100x larger."""
    found = []
    for std in (0.002, 0.2):
        model = neat_core.inject(_scaled_tiny(std), NeatConfig(rank=4, depth=4, scale="auto", targets=["qkv"]))
        found.append(torch.cat([layer.neat["default"].scales for _, layer in neat_core.neat_layers(model)]))
    torch.testing.assert_close(found[0], 100 * found[1], rtol=1e-5, atol=0)


def test_a_numeric_scale_stores_no_scales_and_bad_values_are_refused():
    model = neat_core.inject(make_tiny(), NeatConfig(scale=0.5, targets=["qkv"]))
    layer = dict(neat_core.neat_layers(model))["blocks.0.qkv"]
    assert layer.neat["default"].scales is None and layer.scale_factor("default", torch.ones(1, 2, 2)) == 0.5
    assert not any(k.endswith("scales") for k in model.state_dict())
    for bad in ("Auto", None, True):
        with pytest.raises(ValueError, match=f"NeatConfig.scale must be a number or 'auto', got {bad!r}."):
            NeatConfig(scale=bad)


def test_a_zero_weight_is_one_clear_error_and_the_model_is_left_as_it_was():
    model = make_tiny()
    with torch.no_grad():
        model.blocks[1].qkv.weight.zero_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = [type(m).__name__ for m in model.modules()]
    with pytest.raises(ValueError, match=r"^blocks\.1\.qkv: scale='auto' cannot be computed for this 16->48 layer: "
                                         r"its weight network's output at init has rms \[0\.0\] .* Give "
                                         r"NeatConfig\.scale a number for it\.$"):
        neat_core.inject(model, NeatConfig(scale="auto", targets=["qkv"]))
    assert [type(m).__name__ for m in model.modules()] == modules   # blocks.0.qkv unwrapped again
    assert neat_core.adapter_configs(model) == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_half_precision_base_gets_fp32_scales_of_its_weight_and_keeps_them():
    model = neat_core.inject(make_tiny().to(torch.bfloat16), NeatConfig(rank=4, scale="auto", targets=["qkv"]))
    layer = dict(neat_core.neat_layers(model))["blocks.0.qkv"]
    scales = layer.neat["default"].scales
    assert scales.dtype == torch.float32
    reference = neat_core.inject(make_tiny().to(torch.bfloat16).float(),
                                 NeatConfig(rank=4, scale="auto", targets=["qkv"]))   # the same A (same seed)
    torch.testing.assert_close(scales, dict(neat_core.neat_layers(reference))["blocks.0.qkv"].neat["default"].scales)
    model.half()
    assert torch.equal(layer.neat["default"].scales, scales) and layer.neat["default"].scales.dtype == torch.float32


def test_injection_on_the_meta_device_counts_parameters_without_values():
    with torch.device("meta"):
        model = make_tiny()
        neat_core.inject(model, NeatConfig(rank=3, scale="auto", targets=["qkv"]))
    assert neat_core.trainable_parameters(model) == 2 * (48 * 3 + 3 * 48)   # two qkv layers; scales do not train


def _trained(model: torch.nn.Module) -> torch.nn.Module:
    randomize_adapters(model, std=0.2)   # parameters only: the stored scales stay the computed ones
    return model.eval()


def _vit_outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def test_save_load_into_a_fresh_model_uses_the_stored_scales(tmp_path, monkeypatch):
    base = tiny_vit()
    ours = _trained(neat_vision.patch(copy.deepcopy(base), rank=3, depth=4, activation="sin", scale="auto"))
    expected = _vit_outputs(ours)
    assert (expected - _vit_outputs(base)).abs().max() > 1e-2   # the adapter matters
    neat_core.save_adapter(ours, tmp_path / "adapter")
    stored = {n: layer.neat["default"].scales.clone() for n, layer in neat_core.neat_layers(ours)}
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["config"]["scale"] == "auto"

    def never(*args):
        raise AssertionError("loading recomputed the scales")

    monkeypatch.setattr(NeatLinear, "auto_scales", never)
    fresh = neat_core.load_adapter(copy.deepcopy(base), tmp_path / "adapter")
    assert torch.equal(_vit_outputs(fresh.eval()), expected)

    other = copy.deepcopy(base)   # another base (weights doubled): the loaded scales are still the stored ones
    with torch.no_grad():
        for block in other.blocks:
            block.attn.qkv.weight.mul_(2)
    other = neat_core.load_adapter(other, tmp_path / "adapter")
    for name, layer in neat_core.neat_layers(other):
        assert torch.equal(layer.neat["default"].scales, stored[name])


def test_state_dict_round_trip_and_a_file_without_scales_is_refused(tmp_path):
    base = tiny_vit()
    ours = _trained(neat_vision.patch(copy.deepcopy(base), rank=3, scale="auto"))
    state = ours.state_dict()
    assert state["blocks.0.attn.qkv.neat.default.scales"].shape == (2,)   # q and v slices
    again = neat_vision.patch(copy.deepcopy(base), rank=3, scale="auto")
    again.load_state_dict(state)
    assert torch.equal(_vit_outputs(again.eval()), _vit_outputs(ours))

    neat_core.save_adapter(ours, tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = {k: v for k, v in load_file(tmp_path / "adapter_model.safetensors").items() if "scales" not in k}
    save_file(tensors, tmp_path / "adapter_model.safetensors")
    plain = copy.deepcopy(base)
    with pytest.raises(ValueError, match="missing blocks.0.attn.qkv.neat.scales"):
        neat_core.load_adapter(plain, tmp_path)
    assert neat_core.adapter_configs(plain) == {}


def test_merge_and_unmerge_are_exact():
    ours = _trained(neat_vision.patch(tiny_vit(), rank=3, depth=6, scale="auto", preset="qv_mlp"))
    expected = _vit_outputs(ours)
    weights = {k: v.clone() for k, v in ours.state_dict().items()}
    neat_core.merge(ours)
    torch.testing.assert_close(_vit_outputs(ours), expected, atol=1e-5, rtol=0)
    neat_core.unmerge(ours)
    assert all(torch.equal(weights[k], v) for k, v in ours.state_dict().items())
    plain = neat_core.merge_and_unload(ours)
    torch.testing.assert_close(_vit_outputs(plain), expected, atol=1e-5, rtol=0)


def test_to_lora_writes_each_slices_scale_into_lora_b(tmp_path):
    base = tiny_vit()
    ours = _trained(neat_vision.patch(copy.deepcopy(base), rank=3, activation="sin", scale="auto", preset="qv_mlp"))
    scales = [layer.neat["default"].scales for _, layer in neat_core.neat_layers(ours)]
    assert all(len(s) == 2 for s in scales[::3]) and len({round(float(s), 6) for t in scales for s in t}) > 4
    neat_core.to_lora(ours, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()
    torch.testing.assert_close(_vit_outputs(peft_model), _vit_outputs(ours), atol=1e-5, rtol=0)


def test_to_peft_folds_each_layers_scale_into_b_and_from_peft_reads_it_back(tmp_path):
    base = tiny_model("bert")
    ours = neat_text.patch(copy.deepcopy(base), rank=4, depth=4, scale="auto")
    randomize_adapters(ours, std=0.3)
    inputs = tiny_inputs(base)
    expected = logits(ours, inputs)
    neat_core.to_peft(ours, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["scaling"] == 1.0
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()
    torch.testing.assert_close(logits(peft_model, inputs), expected, atol=1e-5, rtol=0)
    back = neat_core.from_peft(copy.deepcopy(base), tmp_path)
    assert neat_core.adapter_configs(back)["default"].scale == 1.0
    torch.testing.assert_close(logits(back, inputs), expected, atol=1e-5, rtol=0)


def test_save_pretrained_and_adapter_folders_of_a_text_model_load_back_exactly(tmp_path):
    base = tiny_model("roberta")
    base.save_pretrained(tmp_path / "base")
    ours = neat_text.patch(copy.deepcopy(base), rank=2, depth=4, orientation="in", scale="auto")
    randomize_adapters(ours, std=0.3)
    inputs = tiny_inputs(base)
    expected = logits(ours, inputs)
    ours.save_pretrained(tmp_path / "checkpoint")
    neat_core.save_adapter(ours, tmp_path / "adapter")
    for loaded in (neat_text.from_pretrained(tmp_path / "checkpoint"),
                   neat_text.from_pretrained(tmp_path / "adapter", model_path=tmp_path / "base")):
        assert neat_core.adapter_configs(loaded)["default"].scale == "auto"
        torch.testing.assert_close(logits(loaded, inputs), expected, atol=1e-6, rtol=0)


def test_the_front_ends_from_pretrained_load_the_stored_scales_without_computing_them(tmp_path, monkeypatch):
    vit = _trained(neat_vision.patch(tiny_vit(), rank=3, depth=4, scale="auto"))
    neat_core.save_adapter(vit, tmp_path / "vit")
    base = tiny_model("roberta")
    base.save_pretrained(tmp_path / "base")
    text = neat_text.patch(copy.deepcopy(base), rank=2, orientation="in", scale="auto")
    randomize_adapters(text, std=0.3)
    neat_core.save_adapter(text, tmp_path / "text")

    def never(*args):
        raise AssertionError("loading computed the scales")

    monkeypatch.setattr(NeatLinear, "auto_scales", never)
    loaded_vit = neat_vision.from_pretrained(tmp_path / "vit", pretrained=False)
    loaded_text = neat_text.from_pretrained(tmp_path / "text", model_path=tmp_path / "base")
    for ours, loaded in ((vit, loaded_vit), (text, loaded_text)):
        stored = {n: layer.neat["default"].scales for n, layer in neat_core.neat_layers(ours)}
        found = {n: layer.neat["default"].scales for n, layer in neat_core.neat_layers(loaded)}
        assert found.keys() == stored.keys() and all(torch.equal(found[n], stored[n]) for n in stored)
    torch.testing.assert_close(logits(loaded_text, tiny_inputs(base)), logits(text, tiny_inputs(base)),
                               atol=1e-6, rtol=0)


def test_the_inference_cache_follows_a_change_of_the_stored_scales():
    """The scales are a buffer, not a parameter: loading other scales into it must not leave a stale cached update."""
    model = neat_core.inject(_scaled_tiny(0.05), NeatConfig(targets=["qkv"], slices=FUSED_QV, scale="auto"))
    randomize_adapters(model)
    model.eval()
    x = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(x)
        for _, layer in neat_core.neat_layers(model):
            layer.neat["default"].scales.mul_(2.0)
        after = model(x)
        neat_core.merge(model)
        merged = model(x)
    assert (after - before).abs().max() > 1e-3
    assert torch.allclose(after, merged, atol=1e-5)
