"""neat_vision.patch on small random-init timm models of each supported family."""

import pytest
import timm
import torch
from timm.data import resolve_data_config

import neat_core
import neat_vision
from neat_core import NeatLinear

from conftest import randomize_adapters, tiny_vit

FAMILY_MODELS = {
    "vit": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2), 32),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", dict(img_size=32, patch_size=8, depth=2), 32),
    "dinov2": ("vit_small_patch14_dinov2", dict(img_size=28, depth=2, embed_dim=48, num_heads=2), 28),
    "swin": ("swin_tiny_patch4_window7_224",
             dict(img_size=56, depths=(1, 1), embed_dim=24, num_heads=(1, 2), window_size=7), 56),
    "swinv2": ("swinv2_tiny_window8_256",
               dict(img_size=64, depths=(1, 1), embed_dim=24, num_heads=(1, 2), window_size=8), 64),
    "eva02": ("eva02_tiny_patch14_224", dict(img_size=28, depth=2), 28),
}


def build(key):
    name, kw, size = FAMILY_MODELS[key]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=4, **kw).eval()
    with torch.no_grad():  # random init zeroes or shrinks some residual branches (SwinV2 post-norm, LayerScale)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
            if isinstance(getattr(module, "gamma", None), torch.nn.Parameter):
                module.gamma.fill_(1.0)
    return model, torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def qkv_layers(model):
    return [m for n, m in model.named_modules() if n.endswith("attn.qkv")]


@pytest.mark.parametrize("key", list(FAMILY_MODELS))
@pytest.mark.parametrize("preset", ["qv", "qv_mlp", "all_linear"])
def test_presets_on_each_family(key, preset):
    model, x = build(key)
    base = model(x)
    qkv = qkv_layers(model)
    same = neat_vision.patch(model, preset=preset, rank=3)
    assert same is model
    assert torch.equal(model(x), base)  # identity at init
    layers = dict(neat_core.neat_layers(model))
    assert all(isinstance(m, NeatLinear) for m in qkv_layers(model)) and len(qkv_layers(model)) == len(qkv)
    expected = 0
    for name, layer in layers.items():
        if name.endswith("attn.qkv") and preset != "all_linear":
            d = layer.out_features // 3
            expected += 2 * (d * 3 + 3 * d)  # q and v: A (d x r) and B (r x d) each
        else:
            expected += 2 * layer.out_features * 3
    has_mlp = any(n.endswith(("mlp.fc1", "mlp.fc2")) for n in layers)
    assert has_mlp == (preset != "qv")
    assert any(n.endswith("attn.proj") for n in layers) == (preset == "all_linear")
    heads = neat_vision.head_names(model)
    head_params = sum(p.numel() for h in heads for p in model.get_submodule(h).original.parameters())
    assert neat_core.trainable_parameters(model) == expected + head_params
    randomize_adapters(model, std=0.5)
    with torch.no_grad():
        with neat_core.disabled(model):
            base_feats = model.forward_features(x)
        adapted = model.forward_features(x)
        assert (adapted - base_feats).abs().max() > 1e-3
        neat_core.merge(model)
        assert (model.forward_features(x) - adapted).abs().max() < 1e-4 * adapted.abs().max().clamp(min=1)


def test_paper_vit_b_setting_has_258048_adapter_parameters():
    model = timm.create_model("vit_base_patch16_224", pretrained=False)
    neat_vision.patch(model, rank=7, train_head=False)
    assert neat_core.trainable_parameters(model) == 258_048 == 12 * 2 * 2 * 768 * 7
    neat_core.delete_adapter(model, "default")
    neat_vision.patch(model, rank=7)
    assert neat_core.trainable_parameters(model) == 258_048 + 768 * 1000 + 1000  # plus the head


def test_still_the_same_timm_model():
    model = tiny_vit()
    cfg_before = resolve_data_config({}, model=model)
    neat_vision.patch(model, rank=2)
    assert model.pretrained_cfg["architecture"] == "vit_tiny_patch16_224"
    assert resolve_data_config({}, model=model) == cfg_before
    feats = model.forward_features(torch.randn(1, 3, 32, 32))
    assert feats.shape == (1, 17, 192)
    assert isinstance(model, timm.models.VisionTransformer)


def test_eva_bias_is_added_after_the_adapted_qkv():
    model, x = build("eva02")
    neat_vision.patch(model, rank=2)
    randomize_adapters(model, std=0.5)
    assert all(blk.attn.qkv_bias_separate for blk in model.blocks)
    with torch.no_grad():
        adapted = model.forward_features(x)
        with neat_core.disabled(model):
            assert (model.forward_features(x) - adapted).abs().max() > 1e-3  # the adapter is in the forward


def test_an_eva_adapter_loaded_by_from_pretrained_is_in_the_forward(tmp_path):
    model, x = build("eva02")
    neat_vision.patch(model, rank=2)
    randomize_adapters(model, std=0.5)
    neat_core.save_adapter(model, tmp_path)
    loaded = neat_vision.from_pretrained(tmp_path, pretrained=False)
    assert all(blk.attn.qkv_bias_separate for blk in loaded.blocks)
    loaded.load_state_dict(neat_core.base_state_dict(model), strict=False)   # the same base weights
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-6, rtol=0)


def test_deit_distilled_trains_both_heads():
    model, _ = build("deit_distilled")
    neat_vision.patch(model, rank=2)
    assert neat_core.adapter_configs(model)["default"].modules_to_save == ["head", "head_dist"]


def test_layers_select_blocks_and_user_targets_replace_the_preset():
    model, _ = build("swin")
    neat_vision.patch(model, rank=2, layers=[1])
    assert [n for n, _ in neat_core.neat_layers(model)] == ["layers.1.blocks.0.attn.qkv"]
    vit = tiny_vit()
    neat_vision.patch(vit, targets=["mlp.fc2"], rank=2, train_head=False)
    assert [n for n, _ in neat_core.neat_layers(vit)] == ["blocks.0.mlp.fc2", "blocks.1.mlp.fc2"]
    assert neat_core.trainable_parameters(vit) == 2 * 2 * 192 * 2


def test_unknown_preset_is_refused_and_model_unchanged():
    model = tiny_vit()
    with pytest.raises(ValueError) as err:
        neat_vision.patch(model, preset="qk")
    assert str(err.value) == "Unknown neat_vision preset 'qk'; choose one of qv, qv_mlp, all_linear."
    assert not hasattr(model, "neat_configs")
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_family_suggests_targets():
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with pytest.raises(ValueError) as err:
        neat_vision.patch(model)
    assert str(err.value) == (
        "neat_vision has no preset for timm model family ResNet (known: VisionTransformer, Eva, SwinTransformer, "
        "SwinTransformerV2). Pass targets= with the layers to adapt, e.g. neat_vision.patch(model, "
        "targets=['fc']); linear layers here: fc.")
    neat_vision.patch(model, targets=["fc"], rank=2, train_head=False)
    assert neat_core.trainable_parameters(model) == 2 * 3 * 2


def test_config_and_preset_together_are_refused():
    with pytest.raises(ValueError, match=r"Give either config= or preset=, not both\."):
        neat_vision.patch(tiny_vit(), config=neat_core.NeatConfig(targets=["qkv"]), preset="qv")


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_patched_model_compiles_to_one_graph(autocast):
    """torch.compile sees the whole patched ViT without graph breaks (no Python branching on tensor values)."""
    import torch._dynamo

    model = tiny_vit()
    neat_vision.patch(model, rank=2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        explained = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_an_eva_adapter_loaded_by_neat_core_alone_is_in_the_forward(tmp_path):
    """neat_core.load_adapter on a plain Eva (no neat_vision.patch) must not let its attention bypass the adapter."""
    model, x = build("eva02")
    neat_vision.patch(model, rank=2)
    randomize_adapters(model, std=0.5)
    neat_core.save_adapter(model, tmp_path)
    plain, _ = build("eva02")
    assert not any(blk.attn.qkv_bias_separate for blk in plain.blocks)
    neat_core.load_adapter(plain, tmp_path)
    assert all(blk.attn.qkv_bias_separate for blk in plain.blocks)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-6, rtol=0)


def test_a_misspelt_keyword_names_the_nearest_field_and_leaves_the_model_unchanged():
    model = tiny_vit()
    with pytest.raises(TypeError) as err:
        neat_vision.patch(model, rnak=8)
    assert str(err.value) == (
        "neat_vision.patch() got an unknown keyword 'rnak'. Did you mean 'rank'? NeatConfig fields: rank, depth, "
        "activation, scale, orientation, targets, layers, layers_pattern, exclude, slices, modules_to_save, compute.")
    assert not neat_core.adapter_configs(model) and not any(p.requires_grad is False for p in model.parameters())


def test_a_rank_wider_than_the_layer_is_refused_naming_the_layer():
    model = tiny_vit()
    with pytest.raises(ValueError) as err:
        neat_vision.patch(model, rank=193)
    assert str(err.value) == (
        "NeatConfig.rank=193 is larger than blocks.0.attn.qkv's width 192 (the weight network reads its rows of W^T, "
        "192 wide): use rank <= 192, or leave this layer out (exclude=[...]).")
    assert not neat_core.adapter_configs(model)


def test_merging_a_model_without_adapters_says_what_to_do():
    with pytest.raises(ValueError) as err:
        neat_core.merge(tiny_vit())
    assert str(err.value) == (
        "This VisionTransformer has no active NEAT adapter to merge: patch it (neat_vision.patch / neat_text.patch), "
        "load one (neat_core.load_adapter) or choose one (neat_core.set_adapter) first.")
