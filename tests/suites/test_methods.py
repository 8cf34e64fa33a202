"""benchmarks.core.methods: every image method builds on a tiny timm ViT with the expected trainable parameters."""

import pytest
import timm
import torch

import neat_core
import neat_vision
from benchmarks.core import methods as M
from benchmarks.core.catalog import MethodOptions, methods_for

DIM, DEPTH, CLASSES, RANK = 64, 2, 3, 7
HEAD = DIM * CLASSES + CLASSES


def tiny():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=DEPTH,
                             embed_dim=DIM, num_heads=2, num_classes=CLASSES)


def full_count():
    return sum(p.numel() for p in tiny().parameters())


# Trainable parameters outside the head, per method, on DEPTH blocks whose attn.qkv is DIM -> 3*DIM: NEAT on the q
# and v slices, the PEFT baselines on the q and v linears of the split attn.qkv (DIM -> DIM each).
EXPECTED = {
    "neat": DEPTH * 2 * (DIM * RANK + RANK * DIM),               # q and v slices: A (D x r) and B (r x D) each
    "lora": DEPTH * 2 * 16 * (DIM + DIM),                        # r=16: A (r x in) + B (out x r)
    "dora": DEPTH * 2 * (16 * (DIM + DIM) + DIM),                # LoRA + a magnitude per output row
    "fourierft": DEPTH * 2 * 3000,                               # n_frequency spectral coefficients per layer
    "peanut": DEPTH * 2 * (DIM * RANK + RANK * DIM),             # PEFT's NEAT: the same count as NEAT on q, v
    "vera": DEPTH * 2 * (DIM + 256),                             # lambda_b (out) + lambda_d (r=256)
    "head": 0,
}
FUSED = {"lora": DEPTH * 16 * (DIM + 3 * DIM), "peanut": DEPTH * (3 * DIM * RANK + RANK * 3 * DIM)}  # attn.qkv whole


@pytest.mark.parametrize("name", methods_for("image"))
def test_every_method_builds_with_expected_trainable_parameters(name):
    model = tiny()
    heads = neat_vision.head_names(model)
    built = M.build(name, model, MethodOptions(rank=RANK))
    counts = M.parameter_counts(built, heads)
    expected = full_count() - HEAD if name == "full" else EXPECTED[name]
    assert counts == {"trainable_params": expected + HEAD, "head_params": HEAD, "method_params": expected}
    assert neat_core.trainable_parameters(built) == expected + HEAD
    out = built(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, CLASSES)
    out.sum().backward()  # gradients reach what trains
    assert all(p.grad is not None for p in built.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["lora", "fourierft", "peanut"])
def test_peft_baselines_freeze_the_base_q_and_v_weights(name):
    built = M.build(name, tiny(), MethodOptions(rank=RANK))
    frozen = [n for n, p in built.named_parameters() if n.endswith(("attn.qkv.q.base_layer.weight",
                                                                     "attn.qkv.v.base_layer.weight"))]
    assert len(frozen) == 2 * DEPTH
    assert not any(p.requires_grad for n, p in built.named_parameters() if n in frozen)


@pytest.mark.parametrize("name", list(FUSED))
def test_fused_peft_target_adapts_attn_qkv_whole(name):
    built = M.build(name, tiny(), MethodOptions(rank=RANK, peft_target="fused"))
    assert M.parameter_counts(built, ["head"])["method_params"] == FUSED[name]


def test_neat_depth_and_targets_pass_through():
    built = M.build("neat", tiny(), MethodOptions(rank=4, depth=4, preset="all_linear"))
    config = neat_core.adapter_configs(built)["default"]
    assert (config.rank, config.depth) == (4, 4)
    assert config.targets == ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
    built = M.build("lora", tiny(), MethodOptions(targets=("attn.proj",), lora_r=2, lora_alpha=2))
    assert M.parameter_counts(built, ["head"])["method_params"] == DEPTH * 2 * (DIM + DIM)


def test_peanut_depth_counts_pairs_and_rejects_unknown_activation():
    built = M.build("peanut", tiny(), MethodOptions(rank=RANK, depth=4))  # our depth 4 = PEFT depth 1
    assert M.parameter_counts(built, ["head"])["method_params"] == EXPECTED["peanut"] + DEPTH * 2 * 2 * RANK * RANK
    with pytest.raises(ValueError) as err:
        M.build("peanut", tiny(), MethodOptions(activation="sin"))
    assert str(err.value) == ("PEFT's peanut has no activation 'sin'; choose one of relu, gelu, silu, tanh, "
                              "identity.")
    linear = M.build("peanut", tiny(), MethodOptions(rank=RANK, activation="identity"))   # PEFT's "linear"
    assert {c.act_fn for c in linear.peft_config.values()} == {"linear"}


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        M.build("adapterx", tiny())
    assert str(err.value) == ("Unknown method(s) adapterx; choose from neat, lora, dora, fourierft, peanut, vera, "
                              "head, full.")


def test_head_parameters_are_found_inside_peft_wrappers():
    assert M.is_head_parameter("base_model.model.head.modules_to_save.default.weight", ["head"])
    assert M.is_head_parameter("head.weight", ["head"])
    assert not M.is_head_parameter("blocks.0.attn.qkv.weight", ["head"])
    assert not M.is_head_parameter("heads_extra.weight", ["head"])


def test_saved_adapters_restore_the_trained_model(tmp_path):
    x = torch.randn(2, 3, 32, 32)
    neat = M.build("neat", tiny(), MethodOptions(rank=RANK))
    with torch.no_grad():
        for p in neat.parameters():
            if p.requires_grad:
                p.add_(0.05)
    M.save_adapter("neat", neat, tmp_path / "neat")
    restored = neat_core.load_adapter(tiny(), tmp_path / "neat")
    torch.testing.assert_close(restored.eval()(x), neat.eval()(x))

    lora = M.build("lora", tiny())
    M.save_adapter("lora", lora, tmp_path / "lora")
    assert {p.name for p in (tmp_path / "lora").iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                                               "README.md"}
    with pytest.raises(ValueError, match="Method 'head' has no adapter to save"):
        M.save_adapter("head", M.build("head", tiny()), tmp_path / "head")


def test_the_benchmarks_take_scale_auto_for_neat_and_refuse_it_for_peft_peanut(capsys):
    from benchmarks.core.flags import method_options
    from benchmarks.vtab import cli as vtab

    assert method_options(vtab.parse_args(["--scale", "auto", "--method", "neat,lora"])).scale == "auto"
    assert method_options(vtab.parse_args(["--scale", "0.5"])).scale == 0.5
    with pytest.raises(SystemExit):
        vtab.parse_args(["--scale", "big"])
    assert "argument --scale: expected a finite non-zero number or 'auto', got 'big'" in capsys.readouterr().err
    with pytest.raises(SystemExit):   # the paper suite's methods include peanut: refused before anything trains
        vtab.parse_args(["--scale", "auto"])
    assert capsys.readouterr().err.strip().endswith("error: --scale auto is NEAT's: PEFT's peanut takes one number. "
                                                    "Drop peanut from --method or give --scale a number.")
    model = M.build("neat", tiny(), MethodOptions(rank=2, scale="auto"))
    assert M.auto_scales(model)["auto_scales"]["count"] == 2 * 2   # q and v of 2 blocks
    with pytest.raises(ValueError, match="PEFT's peanut takes one numeric scaling per config, got scale='auto'; "
                                         "scale='auto' is NEAT's \\(method neat\\)."):
        M.build("peanut", tiny(), MethodOptions(scale="auto"))
