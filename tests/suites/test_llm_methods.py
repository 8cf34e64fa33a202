"""The reasoning suite's methods on a tiny random LLaMA: MiLoRA's initialisation against a direct SVD, what
each method trains, identity at init, target checks, and saved adapters that reproduce the trained model."""

from __future__ import annotations

import json

import pytest
import torch

import neat_core
from benchmarks.core import methods as LM
from benchmarks.core.catalog import MethodOptions
from benchmarks.core.errors import SetupError
from benchmarks.llm import cli as llm
from benchmarks.llm.plan import check_launcher, plan, resolve_targets

from support.tiny_llama import INTER, LAYERS, RANK, H, tiny_llama

TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
RECIPES = {   # the method options a reasoning recipe fixes, on the targets every method shares
    "neat": MethodOptions(rank=RANK, scale=1.0, targets=tuple(TARGETS)),
    "peanut": MethodOptions(rank=RANK, scale=1.0, targets=tuple(TARGETS)),
    **{m: MethodOptions(lora_r=RANK, lora_alpha=2 * RANK if m in ("lora", "dora") else RANK, lora_dropout=0.0,
                        targets=tuple(TARGETS)) for m in ("lora", "dora", "pissa", "milora")},
}
# q: 32->32, k and v: 32->16 (2 KV heads of 8), up: 32->64, down: 64->32
IN = {"q_proj": H, "k_proj": H, "v_proj": H, "up_proj": H, "down_proj": INTER}
OUT = {"q_proj": H, "k_proj": H // 2, "v_proj": H // 2, "up_proj": INTER, "down_proj": H}
EXPECTED = {
    "neat": LAYERS * sum(2 * RANK * IN[t] for t in TARGETS),                # orientation 'in': A, B of width in
    "peanut": LAYERS * sum(2 * RANK * OUT[t] for t in TARGETS),             # PEFT: orientation 'out'
    "lora": LAYERS * sum(RANK * (IN[t] + OUT[t]) for t in TARGETS),
    "dora": LAYERS * sum(RANK * (IN[t] + OUT[t]) + OUT[t] for t in TARGETS),  # + a magnitude per output row
}
EXPECTED["pissa"] = EXPECTED["milora"] = EXPECTED["lora"]




IDS = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(5))


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_minor_components_match_a_direct_svd():
    weight = torch.randn(12, 7, generator=torch.Generator().manual_seed(0))
    lora_a, lora_b, residual = LM.minor_components(weight, rank=3, scaling=0.5)
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    minor = u[:, -3:] @ torch.diag(s[-3:]) @ vh[-3:]                       # the 3 smallest singular directions
    assert lora_a.shape == (3, 7) and lora_b.shape == (12, 3)
    torch.testing.assert_close((0.5 * lora_b @ lora_a).double(), minor, atol=1e-5, rtol=0)
    torch.testing.assert_close(residual.double() + minor, weight.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.svdvals(residual.double())[:4], s[:4], atol=1e-5, rtol=0)  # major kept
    # the factors share the singular values evenly: A A^T = B^T B = S_r / scaling
    torch.testing.assert_close(lora_a @ lora_a.T, torch.diag(s[-3:].float() / 0.5), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lora_b.T @ lora_b, torch.diag(s[-3:].float() / 0.5), atol=1e-5, rtol=1e-5)


def test_milora_starts_at_the_pretrained_model_with_the_minor_components():
    original = tiny_llama()
    weight = original.model.layers[1].mlp.down_proj.weight.detach().clone()
    model = LM.build("milora", tiny_llama(), RECIPES["milora"], "causal")
    torch.testing.assert_close(logits(model), logits(original), atol=1e-5, rtol=1e-4)
    layer = model.base_model.model.model.layers[1].mlp.down_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected_a, expected_b, residual = LM.minor_components(weight, RANK, layer.scaling["default"])
    assert torch.equal(a, expected_a) and torch.equal(b, expected_b)
    torch.testing.assert_close(layer.base_layer.weight, residual)
    assert LM.milora_init(model) == LAYERS * len(TARGETS)  # every adapted layer


@pytest.mark.parametrize("method", list(RECIPES))
def test_each_method_trains_only_its_adapters_and_starts_at_the_base(method):
    base = logits(tiny_llama())
    model = LM.build(method, tiny_llama(), RECIPES[method], "causal")
    assert LM.parameter_counts(model, []) == {"trainable_params": EXPECTED[method], "method_params": EXPECTED[method],
                                          "head_params": 0}
    torch.testing.assert_close(logits(model), base, atol=1e-4, rtol=1e-4)  # pissa / milora: residual + BA = W
    loss = model(input_ids=IDS, labels=IDS).loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_neat_uses_the_papers_llm_orientation_and_targets():
    model = LM.build("neat", tiny_llama(), RECIPES["neat"], "causal")
    config = neat_core.adapter_configs(model)["default"]
    assert (config.orientation, config.rank, config.scale, config.targets) == ("in", RANK, 1.0, TARGETS)
    assert sorted(n.rpartition(".")[2] for n, _ in neat_core.neat_layers(model)) == sorted(TARGETS * LAYERS)


def test_targets_come_from_the_preset_or_must_exist():
    assert resolve_targets(tiny_llama(), None) == TARGETS
    with pytest.raises(SetupError, match=r"^Targets o_projx \(the recipe's, or --targets\) match no linear layer of "
                                         r"LlamaForCausalLM; its linear layers are named down_proj, gate_proj, k_proj, "
                                         r"lm_head, o_proj, q_proj, up_proj, v_proj\. On the command line: --targets "
                                         r"with some of them\.$"):
        resolve_targets(tiny_llama(), ("q_proj", "o_projx"))
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32, n_positions=16))
    with pytest.raises(SetupError, match=r"preset 'paper_llm' is for decoder LLMs .* not model_type 'gpt2'.* "
                                         r"On the command line: --targets with some of lm_head"):
        resolve_targets(gpt2, None)


def _perturb(model, seed: int = 3) -> None:
    """Stand-in for training: move every trainable parameter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def test_neat_saves_its_format_and_says_why_peft_cannot_hold_it(tmp_path):
    model = LM.build("neat", tiny_llama(), RECIPES["neat"], "causal")
    _perturb(model)
    saved = LM.save_trained("neat", model, tmp_path, None)
    assert saved["neat_adapter"] == str(tmp_path / "neat") and "peft_adapter" not in saved
    assert "orientation" in saved["peft_adapter_unavailable"]
    fresh = neat_core.load_adapter(tiny_llama(), tmp_path / "neat")
    torch.testing.assert_close(logits(fresh), logits(model), atol=0, rtol=0)


@pytest.mark.parametrize("method", ["pissa", "milora"])
def test_pissa_and_milora_adapters_are_saved_as_lora_of_the_original_weights(method, tmp_path):
    from peft import PeftModel

    model = LM.build(method, tiny_llama(), RECIPES[method], "causal")
    initial = LM.save_initial(method, model, tmp_path)
    _perturb(model)
    saved = LM.save_trained(method, model, tmp_path, initial)
    assert saved["converted_to_lora_of_the_original_weights"] is True
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (config["r"], config["init_lora_weights"]) == (2 * RANK, True)   # [A | A0], [B | -B0]
    restored = PeftModel.from_pretrained(tiny_llama(), tmp_path / "peft")    # the untouched base model
    torch.testing.assert_close(logits(restored), logits(model), atol=1e-4, rtol=1e-4)


def test_lora_saves_a_peft_folder_that_reproduces_it(tmp_path):
    from peft import PeftModel

    model = LM.build("lora", tiny_llama(), RECIPES["lora"], "causal")
    assert LM.save_initial("lora", model, tmp_path) is None
    _perturb(model)
    assert LM.save_trained("lora", model, tmp_path, None) == {"peft_adapter": str(tmp_path / "peft")}
    restored = PeftModel.from_pretrained(tiny_llama(), tmp_path / "peft")
    torch.testing.assert_close(logits(restored), logits(model), atol=1e-6, rtol=1e-5)


def test_neat_on_a_model_type_without_the_llm_preset_uses_the_recipes_targets():
    from transformers import OPTConfig, OPTForCausalLM

    opt = OPTForCausalLM(OPTConfig(hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                                   vocab_size=64, max_position_embeddings=32, word_embed_proj_dim=16))
    model = LM.build("neat", opt, MethodOptions(rank=4, scale=1.0, targets=("q_proj", "v_proj")), "causal")
    config = neat_core.adapter_configs(model)["default"]
    assert (config.orientation, config.rank, config.targets) == ("in", 4, ["q_proj", "v_proj"])
    assert sorted(n for n, _ in neat_core.neat_layers(model)) == [
        f"model.decoder.layers.{i}.self_attn.{t}" for i in range(2) for t in ("q_proj", "v_proj")]


def test_a_launcher_whose_autocast_differs_from_the_runs_precision_is_refused(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    check_launcher("fp32+bf16", cuda=True)   # the same autocast
    check_launcher("fp16", cuda=False)       # a CPU run has no autocast to disagree with
    with pytest.raises(SetupError) as refused:
        check_launcher("fp16", cuda=True)
    assert str(refused.value) == (
        "accelerate launch sets mixed precision 'bf16', but this run trains in fp16 (float16 weights, autocast "
        "'fp16'; the recipes' sources' precision or --dtype): add --mixed_precision fp16 to the accelerate launch "
        "line, or pass --dtype for another precision.")


def test_method_flags_are_recorded_in_the_runs_recipe():
    args = llm.parse_args(["--suite", "peft-metamathqa", "--method", "lora", "--lora-r", "8", "--seeds", "0"])
    job, = plan(args)
    assert job.recipe.options["lora_r"] == 8 and job.recipe.sources["lora_r"] == "command line"
    assert job.options.lora_r == 8
