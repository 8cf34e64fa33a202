"""Inference: the cached factors (reused while nothing changes, rebuilt after every event that changes them, never
while training), several adapters in one batch (`adapters_per_sample`), adapter names `inject` refuses."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_core import NeatConfig, NeatLinear

from conftest import make_tiny, randomize_adapters, tiny_vit
from support.tiny_text import tiny_inputs, tiny_model

QV = {"qkv": {"num_blocks": 3, "blocks": [0, 2]}}


def two_adapters(seed: int = 0) -> nn.Module:
    """TinyNet with adapter "a" (q, v slices of qkv, depth 2) and "b" (qkv and proj whole, depth 4, orientation in)."""
    model = make_tiny(seed)
    neat_core.inject(model, NeatConfig(rank=3, targets=["qkv"], slices=QV), adapter="a")
    neat_core.inject(model, NeatConfig(rank=2, depth=4, orientation="in", activation="gelu",
                                       targets=["qkv", "proj"]), adapter="b")
    randomize_adapters(model)
    neat_core.set_adapter(model, "a")
    return model.eval()


def fresh(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of a copy of `model` that has never cached anything (a deep copy leaves the caches behind)."""
    twin = copy.deepcopy(model)
    assert all(layer._inference_cache == {} for _, layer in neat_core.neat_layers(twin))
    with torch.no_grad():
        return twin(x)


def cached(model: nn.Module) -> list[torch.Tensor]:
    return [t for _, layer in neat_core.neat_layers(model) for _, _, kept in layer._inference_cache.values()
            for t in kept]


def infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# --- the cache ----------------------------------------------------------------------------------------
def test_factors_are_computed_once_and_reused_while_nothing_changes(x):
    model = two_adapters()
    layer = model.blocks[0].qkv
    first = infer(model, x)
    down, up = layer._inference_cache["a"][2]
    assert down.shape == (2 * 3, 16) and up.shape == (2 * 3, 2 * 16)  # q and v slices, rank 3, one product
    second = infer(model, x)
    assert layer._inference_cache["a"][2][0] is down and layer._inference_cache["a"][2][1] is up  # not rebuilt
    assert torch.equal(first, second)
    assert torch.equal(second, fresh(model, x))


def test_optimizer_step_invalidates(x):
    model = two_adapters()
    before = infer(model, x)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    model(x).pow(2).mean().backward()
    opt.step()
    model.eval()
    after = infer(model, x)
    assert (after - before).abs().max() > 1e-3
    assert torch.equal(after, fresh(model, x))


def test_load_adapter_invalidates(x, tmp_path):
    model = two_adapters()
    before = infer(model, x)
    other = two_adapters()
    randomize_adapters(other, seed=7)
    neat_core.save_adapter(other, tmp_path / "a", adapter="a")
    neat_core.load_adapter(model, tmp_path / "a", adapter="a", replace=True)
    after = infer(model, x)
    assert (after - before).abs().max() > 1e-3
    assert torch.equal(after, infer(other, x))


def test_set_adapter_switches_cached_factors(x):
    model = two_adapters()
    out_a = infer(model, x)
    neat_core.set_adapter(model, "b")
    out_b = infer(model, x)
    assert (out_b - out_a).abs().max() > 1e-3
    assert torch.equal(out_b, fresh(model, x))
    assert set(model.blocks[0].qkv._inference_cache) == {"a", "b"}  # both kept: switching back is free
    neat_core.set_adapter(model, "a")
    assert torch.equal(infer(model, x), out_a)


def test_cast_to_float64_and_device_moves_invalidate(x):
    model = two_adapters()
    infer(model, x)
    model.to(torch.float64)
    out = infer(model, x.double())
    assert out.dtype == torch.float64 and cached(model) and all(t.dtype == torch.float64 for t in cached(model))
    assert torch.equal(out, fresh(model, x.double()))
    model.to(torch.float32)
    assert cached(model) == []  # a cast drops the cache


def test_autocast_dtype_is_part_of_the_key(x):
    model = two_adapters()
    fp32 = infer(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = infer(model, x)
    assert all(t.dtype == torch.bfloat16 for t in cached(model))
    assert torch.equal(infer(model, x), fp32)  # rebuilt in fp32, not the bf16 factors
    assert (bf16.float() - fp32).abs().max() < 0.05 * fp32.abs().max()


def test_merge_and_unmerge_never_read_stale_factors(x):
    model = two_adapters()
    adapted = infer(model, x)
    with neat_core.disabled(model):
        base = infer(model, x)
    neat_core.merge(model)
    assert cached(model) == []
    merged = infer(model, x)
    assert (merged - adapted).abs().max() < 1e-5  # no update added on top of the merged weight
    neat_core.unmerge(model)
    assert torch.equal(infer(model, x), adapted)
    with neat_core.disabled(model):
        assert torch.equal(infer(model, x), base)


def test_load_state_dict_and_in_place_base_changes_invalidate(x):
    model = two_adapters()
    before = infer(model, x)
    other = two_adapters(seed=5)
    randomize_adapters(other, seed=9)
    model.load_state_dict(other.state_dict())
    after = infer(model, x)
    assert (after - before).abs().max() > 1e-3
    assert torch.equal(after, infer(other, x))
    with torch.no_grad():
        model.blocks[1].qkv.base_layer.weight.mul_(1.5)  # a fine-tuned base: the factors read W0
    assert torch.equal(infer(model, x), fresh(model, x))
    assert (infer(model, x) - after).abs().max() > 1e-3


def test_settings_change_invalidates(x):
    model = two_adapters()
    infer(model, x)
    layer = model.blocks[0].qkv
    layer.settings["a"] = layer.settings["a"].__class__(**{**layer.settings["a"].__dict__, "scale": 2.0,
                                                           "compute": "materialized"})
    out = infer(model, x)
    (updated,) = layer._inference_cache["a"][2]  # the materialized path keeps W + dW
    assert updated.shape == (48, 16)
    assert torch.equal(out, fresh(model, x))


def test_no_cache_while_training_and_no_graph_in_the_cache(x):
    model = two_adapters()
    model.train()
    model(x).sum().backward()
    assert cached(model) == []
    model.eval()
    model(x).sum().backward()  # eval mode, grad on, trainable adapter: still no cache
    assert cached(model) == []
    infer(model, x)
    assert cached(model) and all(not t.requires_grad and t.grad_fn is None for t in cached(model))


def test_frozen_model_caches_with_grad_on_and_input_gradients_still_flow(x):
    model = two_adapters().requires_grad_(False)
    with torch.inference_mode():
        expected = model(x)  # the cache is built here, outside the inference-tensor world
    inputs = x.clone().requires_grad_(True)
    out = model(inputs)
    assert cached(model) and all(t.grad_fn is None for t in cached(model))
    out.sum().backward()
    assert torch.equal(out.detach(), expected) and inputs.grad is not None and inputs.grad.abs().sum() > 0


def test_pickles_and_deep_copies_leave_the_cache_behind(x):
    model = two_adapters()
    expected = infer(model, x)
    assert cached(model)
    loaded = pickle.loads(pickle.dumps(model))
    assert cached(loaded) == [] and torch.equal(infer(loaded, x), expected)
    layer = loaded.blocks[0].qkv
    state = layer.__dict__.copy()
    for attr in ("_inference_cache", "sample_adapters", "_where"):  # a pickle written before these existed
        del state[attr]
    old = NeatLinear.__new__(NeatLinear)
    old.__setstate__(state)
    assert old._inference_cache == {} and old.sample_adapters is None


def test_compiled_inference_is_one_graph_and_equals_eager(x):
    import torch._dynamo

    model = tiny_vit()
    neat_vision.patch(model, rank=2)
    randomize_adapters(model)
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager = model(images)
        explained = torch._dynamo.explain(model)(images)
        torch._dynamo.reset()
        compiled = torch.compile(model)(images)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    assert (compiled - eager).abs().max() < 1e-5


# --- several adapters in one batch --------------------------------------------------------------------
def per_sample(model: nn.Module, names: list[str], run, inputs: list) -> list[torch.Tensor]:
    """Each sample alone with its adapter (set_adapter, or disabled for "__base__")."""
    active = neat_core.active_adapter(model)
    outs = []
    with torch.no_grad():
        for name, one in zip(names, inputs):
            if name == "__base__":
                with neat_core.disabled(model):
                    outs.append(run(model, one))
            else:
                neat_core.set_adapter(model, name)
                outs.append(run(model, one))
    neat_core.set_adapter(model, active)
    return outs


def assert_adapters_matter(model: nn.Module, names: list[str], alone: list[torch.Tensor], run, inputs: list) -> None:
    """Every sample given an adapter gets an output that differs from the base model's for it."""
    base = per_sample(model, ["__base__"] * len(names), run, inputs)
    for name, out, plain in zip(names, alone, base):
        assert ((out - plain).abs().max() > 1e-4) == (name != "__base__"), name


def vit_with_three_adapters() -> nn.Module:
    model = tiny_vit()
    neat_vision.patch(model, rank=4)  # "default": q and v slices
    neat_core.inject(model, NeatConfig(rank=2, depth=4, activation="sin", targets=["attn.qkv", "mlp.fc1"]),
                     adapter="mlp")
    neat_core.inject(model, NeatConfig(rank=3, orientation="in", targets=["attn.proj"], compute="materialized"),
                     adapter="proj")
    randomize_adapters(model, std=0.1)
    neat_core.set_adapter(model, "default")
    return model.eval()


@pytest.mark.parametrize("names", [
    ["default", "mlp", "__base__", "default", "proj", "mlp"],  # scattered: index tensors
    ["mlp", "mlp", "default", "default", "default", "proj"],  # sorted by adapter: slices
], ids=["scattered", "grouped"])
def test_mixed_batch_equals_each_sample_alone_on_a_timm_vit(names):
    model = vit_with_three_adapters()
    images = torch.randn(len(names), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), neat_core.adapters_per_sample(model, names):
        mixed = model(images)
        again = model(images)  # from the cached factors of all three adapters
    alone = per_sample(model, names, lambda m, one: m(one[None])[0], list(images))
    for i, expected in enumerate(alone):
        assert (mixed[i] - expected).abs().max() <= 1e-6, (i, names[i])
    assert torch.equal(mixed, again)
    assert_adapters_matter(model, names, alone, lambda m, one: m(one[None])[0], list(images))
    assert all(layer.sample_adapters is None for _, layer in neat_core.neat_layers(model))
    assert neat_core.active_adapter(model) == "default"


def test_the_base_runs_once_for_the_whole_mixed_batch():
    model = vit_with_three_adapters()
    calls = []
    model.blocks[0].attn.qkv.base_layer.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad(), neat_core.adapters_per_sample(model, ["default", "mlp", "__base__", "default"]):
        model(torch.randn(4, 3, 32, 32))
    assert calls == [4]


def test_mixed_batch_equals_each_sample_alone_on_a_tiny_bert():
    model = tiny_model("bert")
    neat_text.patch(model, rank=4)
    neat_core.inject(model, NeatConfig(rank=2, depth=4, orientation="in", targets=["query", "key", "value"]),
                     adapter="qkv")
    randomize_adapters(model, std=0.1)
    inputs = tiny_inputs(model)
    batch = inputs["input_ids"].shape[0]
    names = (["qkv", "default", "__base__"] * batch)[:batch]
    with torch.no_grad(), neat_core.adapters_per_sample(model, names):
        mixed = model(**inputs).logits
    rows = [{k: v[i:i + 1] for k, v in inputs.items()} for i in range(batch)]
    alone = per_sample(model, names, lambda m, one: m(**one).logits[0], rows)
    for i, expected in enumerate(alone):
        assert (mixed[i] - expected).abs().max() <= 1e-6, (i, names[i])
    assert_adapters_matter(model, names, alone, lambda m, one: m(**one).logits[0], rows)


@pytest.mark.parametrize("decoding", [
    dict(do_sample=False),
    dict(do_sample=False, num_beams=3),
    dict(do_sample=False, num_beams=3, num_return_sequences=2),
], ids=["greedy", "beams", "beams-and-returned-sequences"])
def test_generate_with_per_sample_adapters_on_a_tiny_llama(decoding):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=50,
                                         initializer_range=0.2, pad_token_id=0)).eval()
    neat_text.patch(model, preset="paper_llm", rank=4)
    neat_core.inject(model, NeatConfig(rank=2, targets=["q_proj", "v_proj"]), adapter="qv")
    randomize_adapters(model, std=0.3)
    prompts = torch.randint(1, 50, (3, 5), generator=torch.Generator().manual_seed(1))
    names = ["qv", "default", "__base__"]
    settings = dict(max_new_tokens=4, min_new_tokens=4, **decoding)
    with torch.no_grad(), neat_core.adapters_per_sample(model, names):
        mixed = model.generate(prompts, attention_mask=torch.ones_like(prompts), **settings)
    alone = per_sample(model, names, lambda m, one: m.generate(one[None], attention_mask=torch.ones_like(one[None]),
                                                               **settings), list(prompts))
    returned = decoding.get("num_return_sequences", 1)
    assert mixed.shape == (len(names) * returned, 5 + 4)
    assert mixed.tolist() == [row for a in alone for row in a.tolist()]   # each prompt's sequences, in order
    assert len({tuple(a[0].tolist()) for a in alone}) == len(names)   # the adapters lead to different texts


def test_per_sample_errors_leave_the_model_as_it_was(x):
    model = two_adapters()
    expected = infer(model, x)
    with pytest.raises(ValueError) as err, neat_core.adapters_per_sample(model, ["a", "c", "b", "zz"]):
        pass
    assert str(err.value) == ("Unknown adapter name(s) in adapters_per_sample: 'c', 'zz'; this model has 'a', 'b' "
                              "(and '__base__' for the base model alone).")
    for bad in ("a", [], ["a", 1]):
        with pytest.raises(ValueError, match=r"adapters_per_sample takes a list with one adapter name per sample "
                                             r"\(e\.g\. \['a', 'b', '__base__'\]\), got "):
            with neat_core.adapters_per_sample(model, bad):
                pass
    with pytest.raises(ValueError) as err, torch.no_grad(), neat_core.adapters_per_sample(model, ["a", "b", "a"]):
        model(x)  # x holds 4 samples
    assert str(err.value) == (
        "adapters_per_sample has 3 adapter names, but NEAT layer blocks.0.qkv gets an input of shape (4, 5, 16), whose "
        "first dimension should be the 3 samples (or a multiple of them: k rows per sample, each sample's together, as "
        "generate's beams and returned sequences). Give one name per sample of the batch.")
    model.train()
    with pytest.raises(ValueError) as err, neat_core.adapters_per_sample(model, ["a", "b", "a", "b"]):
        model(x)
    assert str(err.value) == (
        "adapters_per_sample is for inference, but NEAT layer blocks.0.qkv is in training mode with autograd on; call "
        "model.eval() or run under torch.no_grad() / torch.inference_mode().")
    with torch.no_grad(), neat_core.adapters_per_sample(model, ["a", "b", "a", "b"]):
        train_no_grad = model(x)  # training mode without autograd: allowed
    model.eval()
    neat_core.merge(model)
    with pytest.raises(ValueError, match=r"^adapters_per_sample needs unmerged adapters, but 'a' is merged; call "
                                         r"neat_core\.unmerge\(model\) first\.$"):
        with neat_core.adapters_per_sample(model, ["a"] * 4):
            pass
    neat_core.unmerge(model)
    assert torch.equal(infer(model, x), expected)
    assert all(layer.sample_adapters is None for _, layer in neat_core.neat_layers(model))
    with neat_core.adapters_per_sample(model, ["a"] * 4):  # one adapter for all: the active-adapter path
        assert torch.equal(infer(model, x), expected)
    assert train_no_grad.shape == expected.shape


def test_disabled_inside_a_per_sample_block_gives_the_base(x):
    model = two_adapters()
    with neat_core.disabled(model):
        base = infer(model, x)
    with neat_core.adapters_per_sample(model, ["a", "b", "__base__", "b"]), neat_core.disabled(model):
        assert torch.equal(infer(model, x), base)


# --- adapter names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["keys", "items", "values", "update", "pop", "forward", "training", "a.b", "",
                                  "__base__", None])
def test_names_a_module_dict_cannot_hold_are_refused_before_anything_changes(name, tmp_path):
    model = make_tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    message = (f"{name!r} cannot name a NEAT adapter: use a non-empty string without '.' that is not '__base__' "
               "(the base model in adapters_per_sample) and not an attribute of torch's nn.ModuleDict (such as "
               "'keys', 'items', 'values', 'update', 'pop', 'forward', 'training'); e.g. 'default', 'task_a', "
               "'pets-r8'.")
    with pytest.raises(ValueError) as err:
        neat_core.inject(model, NeatConfig(targets=["qkv"]), adapter=name)
    assert str(err.value) == message
    assert not any(isinstance(m, NeatLinear) for m in model.modules()) and not hasattr(model, "neat_configs")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    saved = make_tiny()
    neat_core.inject(saved, NeatConfig(targets=["qkv"]))
    neat_core.save_adapter(saved, tmp_path)
    with pytest.raises(ValueError) as err:
        neat_core.load_adapter(model, tmp_path, adapter=name)
    assert str(err.value) == message and not any(isinstance(m, NeatLinear) for m in model.modules())


def test_unusual_but_valid_names_work(x):
    model = make_tiny()
    for name in ("pets-r8", "Task A", "ключ"):
        neat_core.inject(model, NeatConfig(rank=2, targets=["qkv"]), adapter=name)
    randomize_adapters(model)
    assert sorted(neat_core.adapter_configs(model)) == ["Task A", "pets-r8", "ключ"]
    assert "blocks.0.qkv.neat.pets-r8.A" in model.state_dict()
    with neat_core.adapters_per_sample(model, ["pets-r8", "Task A", "ключ", "__base__"]):
        assert infer(model, x).shape == (4, 5, 3)


def test_a_trace_records_the_weight_network_not_cached_constants(x):
    model = two_adapters()
    infer(model, x)  # the cache is full when tracing starts
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
    randomize_adapters(model, seed=11)  # in place: the traced module shares the parameters
    with torch.no_grad():
        assert (traced(x) - model(x)).abs().max() < 1e-5
        assert (traced(x) - fresh(model, x)).abs().max() < 1e-5
