"""Plain data the command lines check before anything heavy is imported: the methods and what they train, the
NEAT presets and activations, where the PEFT baselines go on a timm ViT, each method's size knob, and `MethodOptions`.

No torch, timm or transformers here: `python -m benchmarks.vtab --method bogus` fails in a fraction of a second.
The registries that build the methods (methods.METHODS, text_methods.TEXT_METHODS) have exactly these names;
tests/test_cli_light.py checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

# Image-classification methods (benchmarks.vtab), in the order tables list them.
DESCRIPTIONS: dict[str, str] = {
    "neat": "NEAT (ours): the neat_vision preset (default q and v slices of every attn.qkv)",
    "lora": "LoRA (PEFT)", "dora": "DoRA (PEFT)", "fourierft": "FourierFT (PEFT)",
    "peanut": "PEANuT (PEFT's NEAT)", "vera": "VeRA (PEFT)",
    "head": "linear probe (classifier head only)", "full": "full fine-tuning",
}
PEFT_METHODS = ("lora", "dora", "fourierft", "peanut", "vera")

# GLUE methods (benchmarks.glue) on transformers encoders.
TEXT_DESCRIPTIONS: dict[str, str] = {
    "neat-s": "NEAT-S (ours): rank 1, query and value of the last two thirds of the layers",
    "neat-l": "NEAT-L (ours): rank 8, query and value of every layer",
    "lora": "LoRA (PEFT) on query and value", "dora": "DoRA (PEFT) on query and value",
    "fourierft": "FourierFT (PEFT) on query and value", "peanut": "PEANuT (PEFT's NEAT) on query and value",
    "bitfit": "BitFit: every bias term", "head": "classifier head only", "full": "full fine-tuning",
}

# neat_vision.PRESETS' names (the descriptions live there).
PRESETS = ("qv", "qv_mlp", "all_linear")

# neat_core.ACTIVATIONS' names (the functions live there).
ACTIVATIONS = ("relu", "sin", "gelu", "silu", "tanh", "identity")

# --peft-target: where the PEFT baselines adapt a timm ViT.
PEFT_TARGETS: dict[str, str] = {
    "qv": "q and v: timm's fused attn.qkv split into q, k, v linears (neat_vision.qkv), PEFT on q and v",
    "fused": "attn.qkv whole (q, k and v rows together)",
}

# The MethodOptions field that sets each method's adapter size (--match-params changes it).
SIZE_KNOBS: dict[str, str] = {"neat": "rank", "neat-s": "rank", "neat-l": "rank", "peanut": "rank",
                              "lora": "lora_r", "dora": "lora_r", "fourierft": "n_frequency", "vera": "vera_r"}


@dataclass(frozen=True)
class MethodOptions:
    """Hyper-parameters of the methods (defaults: the NEAT paper's ViT-B setting and the baselines' published
    ViT settings; recipes.py cites them)."""

    preset: str = "qv"            # neat: which layers (neat_vision presets)
    targets: tuple[str, ...] = () # layers to adapt instead (neat: replaces the preset; PEFT: replaces q, v)
    rank: int = 7                 # neat and peanut (the paper's ViT rank, run.sh --mhsa_dim 7)
    depth: int = 2                # neat and peanut, counted as the paper does (2 = A, B)
    activation: str = "relu"      # neat and peanut
    scale: float | str = 1.0      # neat and peanut; "auto" (neat only): s per layer from its weight (NeatConfig)
    lora_r: int = 16              # lora (FourierFT's ViT code: --lora-r 16 --lora-alpha 16); dora: the same
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    n_frequency: int = 3000       # fourierft (FourierFT's ViT scripts: --n_frequency 3000 --scale 300)
    fourier_scaling: float = 300.0
    vera_r: int = 256             # vera (no published ViT setting here: PEFT's VeraConfig default)
    peft_target: str = "qv"       # PEFT baselines on a timm ViT: "qv" or "fused" (PEFT_TARGETS)


def check_methods(names: list[str], known: dict[str, str] | tuple[str, ...] = tuple(DESCRIPTIONS)) -> list[str]:
    """`names`, or a ValueError naming the unknown ones and the valid ones."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(known)}.")
    return names
