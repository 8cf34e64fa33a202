"""PEFT's test checklist applied to NEAT on a small fused-qkv model, for several configurations."""

import math

import pytest
import torch
from torch import nn

import neat_core
from neat_core import NeatConfig, NeatLinear
from neat_core.network import ACTIVATIONS

from conftest import make_tiny, randomize_adapters

QV = {"qkv": {"num_blocks": 3, "blocks": [0, 2]}}
CASES = [
    dict(depth=2, activation="relu", orientation="out", targets=["qkv"], slices=QV),
    dict(depth=4, activation="gelu", orientation="in", targets=["qkv", "proj"]),
    dict(depth=6, activation="sin", orientation="out", targets=["qkv", "proj"], slices=QV),
    dict(depth=2, activation="tanh", orientation="in", targets=["qkv"], slices=QV),
    dict(depth=4, activation="silu", orientation="out", targets=["proj"]),
]
IDS = ["d2-relu-out-qv", "d4-gelu-in-whole", "d6-sin-out-qv", "d2-tanh-in-qv", "d4-silu-out-proj"]


def patched(seed=0, **fields):
    model = make_tiny(seed)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    neat_core.inject(model, NeatConfig(rank=3, modules_to_save=["head"], **fields))
    return model, base


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_identity_at_init(case, x):
    model = make_tiny()
    expected = model(x)
    neat_core.inject(model, NeatConfig(rank=3, **case))
    assert torch.equal(model(x), expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sgd_moves_only_adapter_and_head_and_grads_only_on_trainable(case, x):
    model, _ = patched(**case)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".neat.default." in n or n.startswith("head.copies.default.") for n in trainable)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        for n, p in model.named_parameters():
            assert (p.grad is not None) == (n in trainable), n
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable
    assert any(n.endswith(".neat.default.B") for n in changed)
    assert any(n.endswith(".neat.default.A") for n in changed)  # A moves once B is non-zero
    assert "head.copies.default.weight" in changed and "head.original.weight" not in changed  # the adapter's head


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_disabled_merge_unmerge_and_unload_agree(case, x):
    model, base_state = patched(**case)
    randomize_adapters(model)
    with torch.no_grad():
        with neat_core.disabled(model):
            off = model(x)
        adapted = model(x)
        reference = make_tiny()
        assert torch.allclose(off, reference(x), atol=0)
        assert (adapted - off).abs().max() > 1e-2  # the adapter does something
        neat_core.merge(model)
        merged = model(x)
        with neat_core.disabled(model):
            assert torch.equal(model(x), off)  # disabled while merged still gives the base
        neat_core.unmerge(model)
        again = model(x)
        for name, layer in neat_core.neat_layers(model):
            assert torch.equal(layer.base_layer.weight, base_state[f"{name}.base_layer.weight"]
                               if f"{name}.base_layer.weight" in base_state else base_state[f"{name}.weight"])
        unloaded = neat_core.merge_and_unload(model)(x)
    assert (merged - adapted).abs().max() < 1e-4
    assert (again - adapted).abs().max() < 1e-4
    assert (unloaded - adapted).abs().max() < 1e-4
    assert not any(isinstance(m, NeatLinear) for m in model.modules())
    assert type(model.blocks[0].qkv) is nn.Linear and type(model.blocks[0].proj) is nn.Linear
    assert set(model.state_dict()) == set(base_state)


def test_unmerge_restores_weights_exactly():
    model, base = patched(targets=["qkv"], slices=QV)
    randomize_adapters(model)
    neat_core.merge(model)
    assert not torch.equal(model.blocks[0].qkv.base_layer.weight, base["blocks.0.qkv.weight"])
    neat_core.unmerge(model)
    for i in range(2):
        assert (model.blocks[i].qkv.base_layer.weight - base[f"blocks.{i}.qkv.weight"]).abs().max() <= 1e-6


def test_merge_twice_warns_and_changes_nothing(x):
    model, _ = patched(targets=["qkv", "proj"])
    randomize_adapters(model)
    neat_core.merge(model)
    weights = [p.clone() for p in model.parameters()]
    with pytest.warns(UserWarning, match=r"The NEAT adapter is already merged; merge\(\) did nothing\."):
        neat_core.merge(model)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))


def test_safe_merge_refuses_nan_and_changes_nothing():
    model, _ = patched(targets=["qkv", "proj"])
    randomize_adapters(model)
    with torch.no_grad():
        model.blocks[1].proj.neat["default"].A[0, 0, 0] = float("nan")
    weights = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"Merging adapter 'default' gives non-finite weights in blocks\.1\.proj; "
                                         r"the adapter is broken \(NaN/inf\)\. Nothing was merged\."):
        neat_core.merge(model, safe_merge=True)
    assert all(torch.equal(p.nan_to_num(), weights[n].nan_to_num()) for n, p in model.named_parameters())
    assert all(layer.merged_adapter is None for _, layer in neat_core.neat_layers(model))


@pytest.mark.parametrize("orientation", ["out", "in"])
@pytest.mark.parametrize("slices", [{}, QV], ids=["whole", "qv"])
def test_factored_and_materialized_paths_agree(orientation, slices, x):
    model, _ = patched(targets=["qkv"], slices=slices, orientation=orientation, depth=4, activation="sin")
    randomize_adapters(model)
    factored = model(x)
    for _, layer in neat_core.neat_layers(model):
        layer.settings["default"] = layer.settings["default"].__class__(
            **{**layer.settings["default"].__dict__, "compute": "materialized"})
    materialized = model(x)
    assert (factored - materialized).abs().max() <= 1e-5
    materialized.sum().backward()  # the materialized path trains too


def test_auto_rule_factored_when_training_or_cached_materialized_for_many_tokens_when_compiling(monkeypatch):
    model, _ = patched(targets=["qkv"])
    layer = model.blocks[0].qkv  # in 16, out 48
    few, many = torch.randn(2, 16), torch.randn(64, 16)
    assert not layer.uses_materialized(many, "default")  # grad recording: factored
    with torch.no_grad():
        assert layer.caches("default")
        assert not layer.uses_materialized(many, "default")  # cached factors: LoRA's two skinny products
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # inside torch.compile: no cache
        assert not layer.caches("default")
        assert not layer.uses_materialized(few, "default")  # 2*(16+48) <= 16*48
        assert layer.uses_materialized(many, "default")  # 64*(16+48) > 16*48


def test_other_blocks_of_a_fused_layer_stay_bit_identical(x):
    model, _ = patched(targets=["qkv"], slices=QV)
    randomize_adapters(model)
    layer = model.blocks[0].qkv
    with torch.no_grad():
        base = layer.base_layer(x)
        for compute in ("factored", "materialized"):
            layer.settings["default"] = layer.settings["default"].__class__(
                **{**layer.settings["default"].__dict__, "compute": compute})
            out = layer(x)
            assert torch.equal(out[..., 16:32], base[..., 16:32]), compute  # k untouched
            assert not torch.allclose(out[..., :16], base[..., :16])  # q adapted
            assert not torch.allclose(out[..., 32:], base[..., 32:])  # v adapted


def test_formula_against_a_direct_dense_computation():
    """y = x W^T + b + s * (x sigma(W0 A)) B on a hand-built 2x3 case, orientation out, depth 2."""
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]]))
        lin.bias.copy_(torch.tensor([0.1, -0.2]))
    model = nn.Sequential(lin)
    neat_core.inject(model, NeatConfig(rank=1, scale=0.5, targets=["0"]))
    net = model[0].neat["default"]
    with torch.no_grad():
        net.A.copy_(torch.tensor([[[1.0], [2.0]]]))  # out x r
        net.B.copy_(torch.tensor([[[3.0, -1.0]]]))  # r x out
    # W0 = W^T (3x2); W0 A = [1, 0, -1.5]^T; relu -> [1, 0, 0]; dW0 = 0.5 * [[3,-1],[0,0],[0,0]]
    delta_w0 = torch.tensor([[1.5, -0.5], [0.0, 0.0], [0.0, 0.0]])
    x = torch.tensor([[2.0, 1.0, -1.0]])
    expected = x @ (lin.weight.T + delta_w0) + lin.bias
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert torch.allclose(expected, torch.tensor([[-0.5 + 0.1 + 3.0, 2.0 - 0.2 - 1.0]]), atol=1e-6)
    assert torch.allclose(model[0].delta_weight("default"), delta_w0.T, atol=1e-7)


def test_orientation_in_reads_rows_of_w():
    lin = nn.Linear(3, 2, bias=False)
    model = nn.Sequential(lin)
    neat_core.inject(model, NeatConfig(rank=2, orientation="in", activation="tanh", targets=["0"]))
    net = model[0].neat["default"]
    randomize_adapters(model)
    w = lin.weight.detach()
    expected = torch.tanh(w @ net.A[0]) @ net.B[0]  # (2x3): rows of W (length in) through the network
    assert net.A.shape == (1, 3, 2)
    assert torch.allclose(model[0].delta_weight("default"), expected.detach(), atol=1e-6)


def test_depth_six_is_a_then_two_encoders_two_decoders_with_mirrored_residuals_then_b():
    model = nn.Sequential(nn.Linear(5, 4))
    neat_core.inject(model, NeatConfig(rank=3, depth=6, activation="relu", scale=2.0, targets=["0"]))
    net = model[0].neat["default"]
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    assert shapes == {"A": (1, 4, 3), "encoders.0": (1, 3, 3), "encoders.1": (1, 3, 3),
                      "decoders.0": (1, 3, 3), "decoders.1": (1, 3, 3), "B": (1, 3, 4)}
    randomize_adapters(model)
    relu = torch.relu
    w0 = model[0].base_layer.weight.detach().T  # in x out
    h1 = relu(w0 @ net.A[0])
    h2 = relu(h1 @ net.encoders[0][0])
    h3 = relu(h2 @ net.encoders[1][0])
    h4 = relu(h3 @ net.decoders[0][0]) + h2
    h5 = relu(h4 @ net.decoders[1][0]) + h1
    expected = (2.0 * h5 @ net.B[0]).T
    assert torch.allclose(model[0].delta_weight("default"), expected.detach(), atol=1e-6)


def test_sin_is_sin_of_two_pi_x():
    x = torch.tensor([0.0, 0.25, 0.5, 0.125, -0.3])
    assert torch.allclose(ACTIVATIONS["sin"](x), torch.sin(2 * math.pi * x))
    assert torch.allclose(ACTIVATIONS["sin"](torch.tensor(0.25)), torch.tensor(1.0))


def test_init_is_kaiming_uniform_on_a_and_zero_on_b():
    model = nn.Sequential(nn.Linear(64, 400))
    neat_core.inject(model, NeatConfig(rank=8, targets=["0"]))
    net = model[0].neat["default"]
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) on fan_in = out = 400
    assert net.A.abs().max() <= bound and net.A.abs().max() > 0.9 * bound
    assert torch.count_nonzero(net.B) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_and_merge(dtype, x):
    model = make_tiny().to(dtype)
    neat_core.inject(model, NeatConfig(rank=3, depth=4, targets=["qkv", "proj"], slices=QV))
    assert all(p.dtype == torch.float32 for _, layer in neat_core.neat_layers(model) for p in layer.neat.parameters())
    randomize_adapters(model, std=0.05)
    xh = x.to(dtype)
    out = model(xh)
    assert out.dtype == dtype and torch.isfinite(out).all()
    out.float().sum().backward()
    assert model.blocks[0].qkv.neat["default"].B.grad.dtype == torch.float32
    neat_core.merge(model)
    merged = model.eval()(xh)
    assert merged.dtype == dtype
    assert (merged.float() - out.float()).abs().max() < 0.1
    assert model.blocks[0].qkv.base_layer.weight.dtype == dtype


def test_several_adapters_add_switch_delete(x):
    model = make_tiny()
    base = model(x)
    neat_core.inject(model, NeatConfig(rank=2, targets=["qkv"]), adapter="a")
    neat_core.inject(model, NeatConfig(rank=4, targets=["proj"], modules_to_save=["head"]), adapter="b")
    randomize_adapters(model)
    assert neat_core.active_adapter(model) == "b"
    out_b = model(x)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.0.proj.neat.b.A", "blocks.0.proj.neat.b.B", "blocks.1.proj.neat.b.A",
                         "blocks.1.proj.neat.b.B", "head.copies.b.weight", "head.copies.b.bias"}
    neat_core.set_adapter(model, "a")
    out_a = model(x)
    assert all(".neat.a." in n for n, p in model.named_parameters() if p.requires_grad)
    assert not torch.allclose(out_a, out_b)
    # adapter "a" alone: remove "b" and compare with a model carrying only "a"
    neat_core.delete_adapter(model, "b")
    assert sorted(neat_core.adapter_configs(model)) == ["a"]
    assert all("b" not in layer.neat for _, layer in neat_core.neat_layers(model))
    assert isinstance(model.head, torch.nn.Linear)  # no adapter keeps a copy: the head is the model's own again
    assert torch.equal(model(x), out_a)
    neat_core.delete_adapter(model, "a")
    assert neat_core.active_adapter(model) is None
    assert torch.equal(model(x), base)
    with pytest.raises(ValueError, match=r"No adapter named 'a'; this model has none\."):
        neat_core.set_adapter(model, "a")


def test_adding_an_existing_adapter_name_is_refused():
    model, _ = patched(targets=["qkv"])
    with pytest.raises(ValueError, match=r"Adapter 'default' already exists on this model"):
        neat_core.inject(model, NeatConfig(targets=["proj"]))


@pytest.mark.parametrize("first,second", [
    (NeatConfig(targets=["qkv", "head"], modules_to_save=["head"]), None),
    (NeatConfig(targets=["head"], rank=2), NeatConfig(targets=["qkv"], modules_to_save=["head"])),
    (NeatConfig(targets=["qkv"], modules_to_save=["head"]), NeatConfig(targets=["head"], rank=2)),
], ids=["same-adapter", "saved-after-neat", "neat-after-saved"])
def test_a_module_trained_whole_and_a_neat_layer_never_overlap(first, second):
    model = make_tiny()
    if second is not None:
        neat_core.inject(model, first, adapter="a")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        neat_core.inject(model, second or first, adapter="b")
    assert str(err.value) == (
        "modules_to_save entry 'head' overlaps the NEAT layer 'head': a module an adapter trains whole cannot also "
        "hold or be inside a NEAT layer. Leave 'head' out of targets (exclude=['head']) or 'head' out of "
        "modules_to_save.")
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_targets_matching_nothing_names_the_pattern_and_leaves_model_unchanged():
    model = make_tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        neat_core.inject(model, NeatConfig(targets=["qkv", "attn.q_proj"]))
    assert str(err.value) == (
        "NEAT target 'attn.q_proj' matches no linear layer of TinyNet. Linear layers here are named like: "
        "blocks.0.qkv, blocks.0.proj, blocks.1.qkv, blocks.1.proj, head. Pass targets= with names, dotted "
        "suffixes (e.g. 'attn.qkv') or a regex of these.")
    assert not any(isinstance(m, NeatLinear) for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not hasattr(model, "neat_configs")


def test_regex_targets_layers_and_exclude():
    model = make_tiny()
    neat_core.inject(model, NeatConfig(targets=[r"blocks\.\d+\.(qkv|proj)"], layers=[1], exclude=["blocks.1.proj"]))
    assert [n for n, _ in neat_core.neat_layers(model)] == ["blocks.1.qkv"]


def test_only_block_index_after_layers_pattern_counts():
    from neat_core.inject import block_index

    assert block_index("layers.2.blocks.5.attn.qkv", None) == 2
    assert block_index("layers.2.blocks.5.attn.qkv", "blocks") == 5
    assert block_index("head", None) is None


def test_unevenly_spaced_blocks_are_adapted_and_the_rest_untouched():
    lin = nn.Linear(6, 16)
    model = nn.Sequential(lin)
    neat_core.inject(model, NeatConfig(rank=2, targets=["0"], slices={"0": {"num_blocks": 4, "blocks": [0, 1, 3]}}))
    randomize_adapters(model)
    x = torch.randn(3, 6)
    layer = model[0]
    with torch.no_grad():
        base = lin(x)
        out = layer(x)
        assert torch.equal(out[:, 8:12], base[:, 8:12])
        for cols in (slice(0, 4), slice(4, 8), slice(12, 16)):
            assert not torch.allclose(out[:, cols], base[:, cols])
        expected = x @ (lin.weight + layer.delta_weight("default")).T + lin.bias
    assert (out - expected).abs().max() < 1e-5


def test_bf16_autocast_reuses_the_cast_weight_until_the_weight_changes(x):
    model, _ = patched(targets=["qkv"], slices=QV)
    randomize_adapters(model)
    layer = model.blocks[0].qkv
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = model(x)
        cached = layer._cast_weight
        assert cached.dtype == torch.bfloat16
        model(x)
        assert layer._cast_weight is cached  # not re-cast while the frozen weight is unchanged
        with torch.no_grad():
            layer.base_layer.weight.mul_(2.0)
        second = model(x)
        assert layer._cast_weight is not cached
        assert torch.equal(layer._cast_weight, (layer.base_layer.weight.to(torch.bfloat16)))
    assert not torch.allclose(first, second)
    with torch.no_grad():
        reference = model(x)
    assert (second.float() - reference).abs().max() < 0.1 * reference.abs().max()
