"""Checkpoints that never silently corrupt or lose a model: one test per way it used to happen (each failed before
the state-dict contract of docs/ARCHITECTURE.md), plus the rules around it."""

from __future__ import annotations

import io
import json
import socket

import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

import neat_core
import neat_text
import neat_vision
from neat_core import NeatConfig
from neat_core.network import ACTIVATIONS

from conftest import make_tiny, randomize_adapters, tiny_vit
from support.hub_cache import REPO, RecordingApi, fill_cache
from support.tiny_text import logits, randomize, tiny_inputs, tiny_model

IMAGES = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
TOL = dict(atol=1e-5, rtol=1e-5)
MERGED_TRAINING = (
    "NEAT adapter 'default' is merged into the weights, so training would not update it (its parameters get no "
    "gradient). Call neat_core.unmerge(model) to train the adapter, or neat_core.merge_and_unload(model) to train "
    "the merged weights; for inference call model.eval() or run under torch.no_grad().")


def vit_outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IMAGES)


def patched_vit(seed: int = 1) -> torch.nn.Module:
    model = neat_vision.patch(tiny_vit(), rank=3)
    randomize_adapters(model, seed=seed)
    return model.eval()


# --- 1. a merged model's state dict applied dW twice ------------------------------------------------------------
def test_state_dict_of_a_merged_model_holds_the_original_weight_and_reloads_exactly():
    model = patched_vit()
    unmerged_state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = vit_outputs(model)
    neat_core.merge(model)
    merged_state = model.state_dict()
    assert merged_state.keys() == unmerged_state.keys()
    assert all(torch.equal(merged_state[k], unmerged_state[k]) for k in unmerged_state)
    fresh = patched_vit(seed=2)
    fresh.load_state_dict(merged_state)
    torch.testing.assert_close(vit_outputs(fresh), expected, **TOL)


# --- 2. save_pretrained of an unmerged model lost the adapted layers' base weights in the plain class -----------
def test_save_pretrained_folder_reloads_plain_with_base_weights_and_with_neat_text_adapted(tmp_path):
    model = neat_text.patch(tiny_model("bert"), rank=4)
    randomize(model)
    inputs = tiny_inputs(model)
    adapted = logits(model, inputs)
    with neat_core.disabled(model):
        base = logits(model, inputs)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert "bert.encoder.layer.0.attention.self.query.weight" in saved
    assert not any("base_layer" in k for k in saved)
    assert json.loads((tmp_path / "config.json").read_text())["neat_active_adapter"] == "default"
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(logits(plain, inputs), base, atol=0, rtol=0)  # the base, not random q/v weights
    loaded = neat_text.from_pretrained(tmp_path)
    torch.testing.assert_close(logits(loaded, inputs), adapted, atol=0, rtol=0)
    assert neat_core.trainable_parameters(loaded) == neat_core.trainable_parameters(model)


# --- 3. plain checkpoints and patched models did not mix ------------------------------------------------------
def test_plain_checkpoints_load_into_patched_models_and_back(tmp_path):
    finetuned = tiny_vit(num_classes=5)
    with torch.no_grad():
        for p in finetuned.parameters():
            p.add_(0.01)
    torch.save(finetuned.state_dict(), tmp_path / "plain.pth")
    model = patched_vit()
    adapters = {n: p.clone() for n, p in model.named_parameters() if ".neat." in n}
    timm.models.load_checkpoint(model, str(tmp_path / "plain.pth"))  # strict, like resuming a plain run
    assert all(torch.equal(p, adapters[n]) for n, p in model.named_parameters() if ".neat." in n)
    with neat_core.disabled(model):
        torch.testing.assert_close(vit_outputs(model), vit_outputs(finetuned), atol=0, rtol=0)
    plain = tiny_vit()
    result = plain.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == sorted(
        [f"blocks.{i}.attn.qkv.neat.default.{p}" for i in range(2) for p in "AB"]
        + ["head.neat_saved.__base__.bias", "head.neat_saved.__base__.weight"])  # the pre-trained head, kept
    torch.testing.assert_close(vit_outputs(plain), vit_outputs(finetuned), atol=0, rtol=0)


def test_partial_adapter_keys_are_a_strict_error_and_old_base_layer_names_still_load():
    model = patched_vit()
    state = model.state_dict()
    fresh = patched_vit(seed=2)
    partial = {k: v for k, v in state.items() if k != "blocks.1.attn.qkv.neat.default.B"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "blocks\.1\.attn\.qkv\.neat\.default\.B"'):
        fresh.load_state_dict(partial)
    old_names = {k.replace("attn.qkv.", "attn.qkv.base_layer.") if k.endswith(("qkv.weight", "qkv.bias")) else k: v
                 for k, v in state.items()}  # as checkpoints were written before the contract
    assert str(fresh.load_state_dict(old_names)) == "<All keys matched successfully>"
    torch.testing.assert_close(vit_outputs(fresh), vit_outputs(model), atol=0, rtol=0)
    from_model, from_dict = neat_core.base_state_dict(model), neat_core.base_state_dict(state)
    assert from_model.keys() == from_dict.keys() == {k for k in state if ".neat." not in k and ".neat_saved." not in k}


# --- 4. training after merge trained only the head --------------------------------------------------------------
def test_training_a_merged_model_raises_and_inference_does_not():
    model = patched_vit()
    neat_core.merge(model)
    model.train()
    with pytest.raises(RuntimeError) as err:
        model(IMAGES)
    assert str(err.value) == MERGED_TRAINING
    with torch.no_grad():
        model(IMAGES)  # evaluation in train mode without autograd is fine
    model.eval()(IMAGES)  # and so is eval mode with autograd
    with neat_core.disabled(model.train()):
        out = model(IMAGES)  # disabled: the pre-trained model, its frozen head included, so nothing trains
    assert not out.requires_grad
    torch.testing.assert_close(out, vit_outputs(tiny_vit()), **TOL)
    neat_core.unmerge(model)
    model(IMAGES).sum().backward()
    assert model.blocks[0].attn.qkv.neat["default"].B.grad.abs().sum() > 0


# --- 5. pickling and scripting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_torch_save_of_the_whole_model_works_for_every_activation(activation):
    model = make_tiny()
    neat_core.inject(model, NeatConfig(rank=2, depth=4, activation=activation, targets=["qkv"]))
    randomize_adapters(model)
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x), model(x))


def test_torch_jit_script_says_to_trace_or_compile_and_tracing_works():
    model = patched_vit()
    with pytest.raises(RuntimeError) as err:
        torch.jit.script(model)
    assert str(err.value) == (
        "A model with NEAT layers cannot be compiled with torch.jit.script (NeatLinear's forward is Python: several "
        "adapters, fused slices, merged state). Use torch.jit.trace(model, example_inputs) or torch.compile(model) "
        "instead.")
    traced = torch.jit.trace(model, IMAGES)
    torch.testing.assert_close(traced(IMAGES), vit_outputs(model), **TOL)


# --- 6. an adapter for a custom-sized timm model needed the create_model arguments again -----------------------
def test_save_adapter_records_create_model_arguments_and_from_pretrained_uses_them(tmp_path):
    model = patched_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    meta = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert meta["base_model_args"] == {"img_size": [32, 32], "patch_size": [8, 8], "depth": 2}
    save_file(neat_core.base_state_dict(model), tmp_path / "base.safetensors")
    loaded = neat_vision.from_pretrained(tmp_path / "adapter", model_path=tmp_path / "base.safetensors")
    torch.testing.assert_close(vit_outputs(loaded), vit_outputs(model), atol=0, rtol=0)
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=3, img_size=56,
                             depths=(1, 1), embed_dim=24, num_heads=(1, 2), window_size=7)
    assert neat_vision.create_args(swin) == {"img_size": [56, 56], "embed_dim": 24, "depths": [1, 1],
                                             "num_heads": [1, 2]}
    assert neat_vision.create_args(timm.create_model("vit_tiny_patch16_224", pretrained=False)) == {}


def test_arguments_that_cannot_be_worked_out_warn_and_from_pretrained_names_them(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, patch_size=8,
                              depth=2, qk_norm=True)  # qk_norm is not among the arguments read back
    neat_vision.patch(model, rank=2)
    with pytest.warns(UserWarning, match=r"^Could not work out the timm create_model arguments of this "
                                         r"vit_tiny_patch16_224 \(tried \{'img_size': \[32, 32\], 'patch_size': "
                                         r"\[8, 8\], 'depth': 2\}\); the adapter is saved without them\. Pass "
                                         r"save_adapter\(\.\.\., base_model_args=\{\.\.\.\}\)"):
        neat_core.save_adapter(model, tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_args"] is None
    with pytest.raises(ValueError) as err:
        neat_vision.from_pretrained(tmp_path / "adapter", pretrained=False)
    assert str(err.value).endswith(
        "The adapter records no base_model_args. If the adapter was trained on a vit_tiny_patch16_224.augreg_in21k_"
        "ft_in1k built with other timm.create_model arguments, pass them to from_pretrained (img_size=..., "
        "patch_size=..., in_chans=..., embed_dim=..., depth=..., num_heads=..., mlp_ratio=..., qkv_bias=..., "
        "class_token=..., reg_tokens=..., no_embed_class=..., global_pool=...).")
    explicit = {"img_size": 32, "patch_size": 8, "depth": 2, "qk_norm": True}
    neat_core.save_adapter(model, tmp_path / "explicit", base_model_args=explicit)
    assert json.loads((tmp_path / "explicit" / "adapter_config.json").read_text())["base_model_args"] == explicit
    loaded = neat_vision.from_pretrained(tmp_path / "explicit", pretrained=False)
    assert loaded.blocks[0].attn.q_norm.weight.shape == (64,)


# --- 7. a missing Hub adapter took 23-47 s to fail; push_to_hub raised a bare ConnectError ----------------------
@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE unset and no network: every name lookup is recorded and fails at once."""
    from neat_core.remote import hub_reachable  # the one probe, which the benchmarks import too

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    lookups = []

    def fail(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    hub_reachable.cache_clear()
    yield lookups
    hub_reachable.cache_clear()


def test_without_network_downloads_use_the_cache_only_and_fail_at_once(tmp_path, offline_cache, no_network):
    model = patched_vit()
    neat_core.save_adapter(model, tmp_path / "adapter")
    fill_cache(offline_cache, REPO, tmp_path / "adapter")
    torch.testing.assert_close(vit_outputs(neat_core.load_adapter(tiny_vit(), REPO)), vit_outputs(model), atol=0,
                               rtol=0)
    with pytest.raises(neat_core.AdapterNotFoundError) as err:
        neat_core.load_adapter(tiny_vit(), "org/missing")
    assert str(err.value) == (
        f"Adapter 'org/missing' is neither a local folder nor in the Hugging Face cache ({offline_cache}), and the "
        "Hugging Face Hub (huggingface.co) cannot be reached (no network). To work offline, download it once while "
        "online (`hf download org/missing adapter_config.json adapter_model.safetensors`), point HF_HUB_CACHE at a "
        "cache that has it, or pass the path of a folder written by neat_core.save_adapter.")
    # the timm base from the cache: huggingface_hub's layout of timm's repo for the adapter's base
    (tmp_path / "weights").mkdir()
    save_file(neat_core.base_state_dict(model), tmp_path / "weights" / "model.safetensors")
    fill_cache(offline_cache, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", tmp_path / "weights")
    loaded = neat_vision.from_pretrained(tmp_path / "adapter")
    torch.testing.assert_close(vit_outputs(loaded), vit_outputs(model), atol=0, rtol=0)
    assert no_network == ["huggingface.co"]  # the probe, once; then nothing asked the network


def test_push_to_hub_without_network_is_one_message(no_network):
    with pytest.raises(neat_core.HubUnreachableError) as err:
        neat_core.push_to_hub(patched_vit(), REPO)
    assert str(err.value) == (
        "Cannot push to Hub repo 'org/neat-tiny': the Hugging Face Hub (huggingface.co) cannot be reached (no "
        "network). Nothing was uploaded (a repo may have been created). Save the adapter locally with "
        "neat_core.save_adapter(model, folder) and upload that folder when online (`hf upload org/neat-tiny folder`).")
    assert isinstance(err.value, ConnectionError) and no_network == ["huggingface.co"]


def test_a_connection_lost_during_upload_is_one_message(monkeypatch):
    import httpx2

    RecordingApi(monkeypatch)

    def lost(self, **kwargs):
        raise httpx2.ConnectError("[Errno 104] Connection reset by peer")

    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lost)
    with pytest.raises(neat_core.HubUnreachableError, match=r"^Cannot push to Hub repo 'org/neat-tiny': the "
                                                           r"connection failed \(ConnectError: \[Errno 104\] "
                                                           r"Connection reset by peer\)\. Nothing was uploaded"):
        neat_core.push_to_hub(patched_vit(), REPO)


def test_the_probe_asks_the_endpoint_or_its_proxy_once(monkeypatch):
    import neat_core.remote

    calls = []

    def connect(address, timeout):
        calls.append((address, timeout))
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", connect)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    neat_core.remote.hub_reachable.cache_clear()
    assert not neat_core.remote.hub_reachable() and not neat_core.remote.hub_reachable()
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub-mirror.local:8080")
    neat_core.remote.hub_reachable.cache_clear()
    neat_core.remote.hub_reachable()
    monkeypatch.setenv("https_proxy", "http://proxy.local:3128")
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    neat_core.remote.hub_reachable.cache_clear()
    neat_core.remote.hub_reachable()
    neat_core.remote.hub_reachable.cache_clear()
    assert calls == [(("huggingface.co", 443), 3.0), (("hub-mirror.local", 8080), 3.0), (("proxy.local", 3128), 3.0)]


# --- 8. .to(bf16) after patching cast the adapters ----------------------------------------------------------------
@pytest.mark.parametrize("cast", ["to_bf16", "half", "bfloat16"])
def test_casting_the_base_to_half_precision_keeps_adapters_fp32_bit_for_bit(cast):
    model = patched_vit()
    trained = lambda n: ".neat." in n or ".copies." in n  # noqa: E731  (adapters and the adapter's head copy)
    before = {n: p.clone() for n, p in model.named_parameters() if trained(n)}
    assert any(".copies.default." in n for n in before)
    {"to_bf16": lambda: model.to(torch.bfloat16), "half": model.half, "bfloat16": model.bfloat16}[cast]()
    adapters = {n: p for n, p in model.named_parameters() if trained(n)}
    assert adapters.keys() == before.keys()
    assert all(p.dtype == torch.float32 and torch.equal(p, before[n]) for n, p in adapters.items())
    assert model.blocks[0].attn.qkv.base_layer.weight.dtype == model.head.original.weight.dtype != torch.float32
    with torch.no_grad():  # half-precision input runs through the fp32 head and comes back in the input's dtype
        out = model(IMAGES.to(model.head.original.weight.dtype))
    assert out.dtype == model.head.original.weight.dtype
    model.double()
    assert {p.dtype for p in model.parameters()} == {torch.float64}  # fp64 is followed
    model.to("meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}  # device moves are followed
    model.to(torch.bfloat16)  # a dtype-only cast leaves every tensor on its device
    assert {(p.device.type, p.dtype) for n, p in model.named_parameters() if trained(n)} == {
        ("meta", torch.float32)}
    assert model.blocks[0].attn.qkv.base_layer.weight.dtype == torch.bfloat16


@pytest.mark.cuda
def test_half_precision_on_the_gpu_keeps_fp32_adapters_on_the_gpu():
    model = patched_vit().cuda().half()
    assert {(p.device.type, p.dtype) for n, p in model.named_parameters() if ".neat." in n} == {
        ("cuda", torch.float32)}
    with torch.no_grad():
        out = model(IMAGES.cuda().half())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float().cpu(), vit_outputs(patched_vit()), atol=5e-2, rtol=5e-2)


# --- 9. a head built after patching trained but was not saved -------------------------------------------------
def test_save_adapter_saves_every_module_that_trains(tmp_path):
    model = neat_vision.patch(tiny_vit(), rank=3, train_head=False)
    model.reset_classifier(7)  # a new head: trainable, but not in the adapter's modules_to_save
    randomize_adapters(model)
    assert model.head.weight.requires_grad
    neat_core.save_adapter(model, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["config"]["modules_to_save"] == ["head"]
    assert {"head.weight", "head.bias"} <= set(load_file(tmp_path / "adapter_model.safetensors"))
    assert neat_core.adapter_configs(model)["default"].modules_to_save == ["head"]
    loaded = neat_vision.from_pretrained(tmp_path, pretrained=False)
    base = {k: v for k, v in neat_core.base_state_dict(model).items() if not k.startswith("head.")}
    loaded.load_state_dict(base, strict=False)
    torch.testing.assert_close(vit_outputs(loaded), vit_outputs(model), atol=0, rtol=0)


def test_a_trainable_parameter_outside_modules_is_saved_and_an_adapted_weight_is_refused(tmp_path):
    model = neat_vision.patch(tiny_vit(), rank=3)
    model.pos_embed.requires_grad_(True)
    neat_core.save_adapter(model, tmp_path)
    assert neat_core.adapter_configs(model)["default"].modules_to_save == ["head", "pos_embed"]
    assert "pos_embed" in load_file(tmp_path / "adapter_model.safetensors")
    model.blocks[0].attn.qkv.base_layer.weight.requires_grad_(True)
    with pytest.raises(ValueError, match=r"^blocks\.0\.attn\.qkv\.weight trains, but it is a weight that NEAT "
                                         r"adapts, which an adapter does not save: freeze it"):
        neat_core.save_adapter(model, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
