"""Plain data the command lines check before anything heavy is imported: every method the suites know (what it
trains on each kind of model, its size knob), the NEAT presets and activations, where PEFT baselines go on a timm
ViT, and `MethodOptions`.

No torch, timm or transformers here: `python -m benchmarks.vtab --method bogus` fails in a fraction of a second.
The registry that builds the methods (`core.methods.BUILDERS`) has exactly these names; a test keeps them equal.

Kinds of model a method is built on:
  image   a timm classifier (benchmarks.vtab, the image ablations)
  text    a transformers sequence classifier (benchmarks.glue)
  causal  a transformers causal LM (benchmarks.llm)
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("image", "text", "causal")


@dataclass(frozen=True)
class Method:
    """A method's name, what it trains on each kind of model it supports, and the MethodOptions field that sets its
    adapter size (None: it has no size to match)."""

    name: str
    kinds: dict[str, str]
    knob: str | None = None


_PEFT = "(PEFT)"
# One table for every suite, in the order reports list methods; a suite runs the methods of its kind.
METHODS: dict[str, Method] = {m.name: m for m in [
    Method("neat", {"image": "NEAT (ours): the neat_vision preset (default q and v slices of every attn.qkv)",
                    "causal": "NEAT (ours): neat_text preset paper_llm (orientation 'in') on the recipe's targets"},
           "rank"),
    Method("neat-s", {"text": "NEAT-S (ours): rank 1, query and value of the last two thirds of the layers"}, "rank"),
    Method("neat-l", {"text": "NEAT-L (ours): rank 8, query and value of every layer"}, "rank"),
    Method("lora", {"image": f"LoRA {_PEFT}", "text": f"LoRA {_PEFT} on query and value", "causal": f"LoRA {_PEFT}"},
           "lora_r"),
    Method("dora", {"image": f"DoRA {_PEFT}", "text": f"DoRA {_PEFT} on query and value", "causal": f"DoRA {_PEFT}"},
           "lora_r"),
    Method("fourierft", {"image": f"FourierFT {_PEFT}", "text": f"FourierFT {_PEFT} on query and value"},
           "n_frequency"),
    Method("pissa", {"causal": "PiSSA (PEFT, init_lora_weights='pissa')"}),
    Method("milora", {"causal": "MiLoRA (PEFT LoRA initialised from the minor singular components)"}),
    Method("peanut", {"image": "PEANuT (PEFT's NEAT)", "text": "PEANuT (PEFT's NEAT) on query and value",
                      "causal": "PEANuT (PEFT's NEAT; orientation 'out', the only one PEFT has)"}, "rank"),
    Method("vera", {"image": f"VeRA {_PEFT}"}, "vera_r"),
    Method("bitfit", {"text": "BitFit: every bias term"}),
    Method("head", {"image": "linear probe (classifier head only)", "text": "classifier head only"}),
    Method("full", {"image": "full fine-tuning", "text": "full fine-tuning"}),
]}
PEFT_METHODS = ("lora", "dora", "fourierft", "pissa", "milora", "peanut", "vera")


def methods_for(kind: str) -> tuple[str, ...]:
    """The methods that build on `kind`, in the table's order."""
    return tuple(name for name, m in METHODS.items() if kind in m.kinds)


def descriptions(kind: str) -> dict[str, str]:
    """{method: what it trains on `kind`}."""
    return {name: METHODS[name].kinds[kind] for name in methods_for(kind)}


def size_knob(method: str) -> str | None:
    """The MethodOptions field that sets `method`'s adapter size (None for an unknown name or a method without one)."""
    found = METHODS.get(method)
    return found.knob if found else None


def check_methods(names: list[str], known: tuple[str, ...] | dict[str, str]) -> list[str]:
    """`names`, or a ValueError naming the unknown ones and the valid ones."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(known)}.")
    return names


# neat_vision.PRESETS' names (the descriptions live there).
PRESETS = ("qv", "qv_mlp", "all_linear")

# neat_core.ACTIVATIONS' names (the functions live there).
ACTIVATIONS = ("relu", "sin", "gelu", "silu", "tanh", "identity")

# --peft-target: where the PEFT baselines adapt a timm ViT.
PEFT_TARGETS: dict[str, str] = {
    "qv": "q and v: timm's fused attn.qkv split into q, k, v linears (neat_vision.qkv), PEFT on q and v",
    "fused": "attn.qkv whole (q, k and v rows together)",
}


@dataclass(frozen=True)
class MethodOptions:
    """Hyper-parameters of the methods (defaults: the NEAT paper's ViT-B setting and the baselines' published ViT
    settings, cited in benchmarks/vtab/recipes.py; the GLUE and reasoning recipes set their own)."""

    preset: str = "qv"            # neat: which layers (neat_vision presets)
    targets: tuple[str, ...] = () # layers to adapt instead (neat: replaces the preset; PEFT: replaces q, v)
    rank: int = 7                 # neat and peanut (the paper's ViT rank, run.sh --mhsa_dim 7)
    depth: int = 2                # neat and peanut, counted as the paper does (2 = A, B)
    activation: str = "relu"      # neat and peanut
    scale: float | str = 1.0      # neat and peanut; "auto" (neat only): s per layer from its weight (NeatConfig)
    lora_r: int = 16              # lora (FourierFT's ViT code: --lora-r 16 --lora-alpha 16); dora: the same
    lora_alpha: float = 16
    lora_dropout: float = 0.1
    n_frequency: int = 3000       # fourierft (FourierFT's ViT scripts: --n_frequency 3000 --scale 300)
    fourier_scaling: float = 300.0
    vera_r: int = 256             # vera (VeRA paper Table 11, ViT; PEFT's VeraConfig default)
    peft_target: str = "qv"       # PEFT baselines on a timm ViT: "qv" or "fused" (PEFT_TARGETS)
