"""neat_vision.qkv: timm's fused attn.qkv split into q, k, v linears and merged back, exactly; the PEFT baselines
on q and v only."""

import pytest
import timm
import torch

from benchmarks.core import budget
from benchmarks.core import methods as M
from benchmarks.core.catalog import MethodOptions
from neat_vision.qkv import QKV, split_qkv, merge_qkv

FAMILIES = {  # tiny random-init members of each family with a fused qkv
    "vit_tiny_patch16_224": dict(img_size=32, patch_size=8, depth=2),
    "eva02_tiny_patch14_224": dict(img_size=28, depth=2),                      # q/v biases beside a bias-free qkv
    "swinv2_tiny_window8_256": dict(img_size=64, depths=(1, 1, 1, 1), window_size=2),
}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=3, **FAMILIES[name]).eval()


def images(name: str) -> torch.Tensor:
    size = FAMILIES[name]["img_size"]
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_split_computes_the_same_outputs_and_merge_restores_timm_exactly(name):
    model, x = build(name), images(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    switches = {n: m.qkv_bias_separate for n, m in model.named_modules() if hasattr(m, "qkv_bias_separate")}
    with torch.no_grad():
        fused = model(x)
        split_qkv(model)
        torch.testing.assert_close(model(x), fused, atol=1e-6, rtol=0)
    qkv_modules = [m for m in model.modules() if isinstance(m, QKV)]
    assert qkv_modules and all(not isinstance(getattr(m, "qkv", None), torch.nn.Linear) for m in model.modules()
                               if hasattr(m, "qkv") and m.qkv is not None)
    first = qkv_modules[0]
    assert first.weight.shape == (first.out_features, first.in_features)   # code reading qkv.weight still works
    assert any(k.endswith("attn.qkv.q.weight") for k in model.state_dict())
    merge_qkv(model)
    restored = model.state_dict()
    assert list(restored) == list(state)
    assert all(torch.equal(restored[k], state[k]) for k in state)
    assert {n: m.qkv_bias_separate for n, m in model.named_modules() if hasattr(m, "qkv_bias_separate")} == switches


@pytest.mark.parametrize("method", ["lora", "dora", "fourierft", "vera", "peanut"])
def test_peft_baselines_adapt_exactly_q_and_v_and_merge_back_to_timm_keys(method):
    name = "vit_tiny_patch16_224"
    model, x = build(name), images(name)
    keys = list(model.state_dict())
    options = MethodOptions(rank=4, lora_r=4, lora_alpha=4, n_frequency=50, vera_r=16, lora_dropout=0.0)
    built = M.build(method, model, options).eval()
    adapted = {n.split(".base_model.model.")[-1].removeprefix("base_model.model.")
               for n, p in built.named_parameters() if p.requires_grad}
    layers = {n.split(".attn.qkv.")[1].split(".")[0] for n in adapted if ".attn.qkv." in n}
    assert layers == {"q", "v"}
    assert all(".attn.qkv." in n or n.startswith("head.") for n in adapted)
    with torch.no_grad():   # a trained-looking adapter: every trainable tensor moved off its init
        gen = torch.Generator().manual_seed(2)
        for p in built.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        expected = built(x)
        plain = merge_qkv(built.merge_and_unload())
        assert list(plain.state_dict()) == keys
        torch.testing.assert_close(plain(x), expected, atol=1e-5, rtol=1e-5)


def test_fused_target_keeps_attn_qkv_whole():
    built = M.build("lora", build("vit_tiny_patch16_224"), MethodOptions(lora_r=2, peft_target="fused"))
    assert {n.split(".lora_")[0].split("blocks.")[1] for n, p in built.named_parameters()
            if p.requires_grad and "lora_" in n} == {"0.attn.qkv", "1.attn.qkv"}
    assert not any(isinstance(m, QKV) for m in built.modules())


def test_merging_with_adapters_attached_and_splitting_a_model_without_qkv_are_refused():
    built = M.build("lora", build("vit_tiny_patch16_224"), MethodOptions(lora_r=2))
    with pytest.raises(ValueError) as err:
        merge_qkv(built)
    assert str(err.value) == ("attn.qkv.q/v still carries an adapter (peft.tuners.lora.layer.Linear); merge and "
                              "unload it first (PEFT: model = model.merge_and_unload()), then merge_qkv.")
    with pytest.raises(ValueError, match="Sequential has no fused `qkv` nn.Linear to split"):
        split_qkv(torch.nn.Sequential(torch.nn.Linear(4, 4)))


def test_paper_sizes_on_vit_b_counted_without_weights():
    """FourierFT n=3000 on q, v of ViT-B/16: FourierFT's published 72K; NEAT rank 7: 258,048 (12 x 2 x 2 x 768 x 7);
    LoRA r=16 on q, v: 589,824."""
    def vit_b():
        return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10)

    options = MethodOptions()
    assert budget.method_params(vit_b, "fourierft", options) == 72_000
    assert budget.method_params(vit_b, "neat", options) == 258_048
    assert budget.method_params(vit_b, "lora", options) == 589_824
