"""Where NEAT goes in each transformers model type: plain data, looked up by `model.config.model_type`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from neat_core.layer import is_adaptable


@dataclass(frozen=True)
class TextLayout:
    """Names (dotted suffixes) of a model type's attention projections."""

    qv: tuple[str, ...]                    # the query and value projections (or the one fused qkv projection)
    layers_pattern: str                    # `layers=` counts the integer after this name
    fused_qv_blocks: tuple[int, ...] = ()  # fused q,k,v output blocks to adapt (GPT-2 c_attn: q=0, v=2 of 3)
    llm: tuple[str, ...] = ()              # targets of the paper's LLM recipe (decoder LLMs only)


_ENCODER = TextLayout(qv=("query", "value"), layers_pattern="layer")
_DECODER_LLM = TextLayout(qv=("q_proj", "v_proj"), layers_pattern="layers",
                          llm=("q_proj", "k_proj", "v_proj", "up_proj", "down_proj"))

# model.config.model_type -> layout, or several (module names changed across transformers versions): the
# first whose q and v projections exist in the model is used.
FAMILIES: dict[str, TextLayout | tuple[TextLayout, ...]] = {
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "electra": _ENCODER,
    # HF ViT: transformers < 5 names vit.encoder.layer.N.attention.attention.{query,value}; 5.x vit.layers.N.attention.*
    "vit": (_ENCODER, TextLayout(qv=("q_proj", "v_proj"), layers_pattern="layers")),
    "deberta-v2": TextLayout(qv=("query_proj", "value_proj"), layers_pattern="layer"),
    "distilbert": TextLayout(qv=("q_lin", "v_lin"), layers_pattern="layer"),
    "llama": _DECODER_LLM,
    "mistral": _DECODER_LLM,
    "qwen2": _DECODER_LLM,
    "gemma": _DECODER_LLM,
    "gpt2": TextLayout(qv=("c_attn",), layers_pattern="h", fused_qv_blocks=(0, 2)),  # Conv1D, weight in x out
}

PRESETS: dict[str, str] = {
    "qv": "query and value projections of every layer (NeatConfig defaults otherwise)",
    "neat_s": "the paper's NEAT-S GLUE setting: rank 1, q and v, the last two thirds of the layers "
              "(layers 4-11 of a 12-layer encoder)",
    "neat_l": "the paper's NEAT-L GLUE setting: rank 8, q and v, all layers",
    "paper_llm": "the paper's LLM recipe (decoder LLMs): q, k, v, up, down projections, orientation 'in', rank 32",
}


def model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


def layout_of(model: nn.Module) -> TextLayout | None:
    """The layout of the model's type that fits its module names (None: unknown model type)."""
    entry = FAMILIES.get(model_type(model))
    if entry is None or isinstance(entry, TextLayout):
        return entry
    names = [n for n, m in model.named_modules() if is_adaptable(m)]
    fits = [lay for lay in entry if all(any(n.endswith("." + q) for n in names) for q in lay.qv)]
    return (fits or entry)[0]


def _num_layers(model: nn.Module) -> int:
    layers = getattr(model.config, "num_hidden_layers", None)
    if not isinstance(layers, int):
        raise ValueError(f"preset 'neat_s' needs model.config.num_hidden_layers, which this "
                         f"{type(model).__name__} config lacks; pass layers=[...] with another preset.")
    return layers


def _unknown_type_error(model: nn.Module) -> ValueError:
    suffixes = list(dict.fromkeys(n.rpartition(".")[2] for n, m in model.named_modules() if is_adaptable(m)))
    known_qv = {q for entry in FAMILIES.values() for lay in (entry if isinstance(entry, tuple) else (entry,))
                for q in lay.qv}
    suggestion = [s for s in suffixes if s in known_qv] or suffixes[:2] or ["query", "value"]
    return ValueError(
        f"neat_text has no preset for model_type {model_type(model)!r} ({type(model).__name__}; known: "
        f"{', '.join(FAMILIES)}). Pass targets= with the layers to adapt, e.g. "
        f"neat_text.patch(model, targets={suggestion}); linear layers here are named "
        f"{', '.join(suffixes[:8]) or '(none)'}.")


def preset_fields(model: nn.Module, preset: str) -> dict[str, Any]:
    """NeatConfig fields (targets, slices, layers, layers_pattern, rank, orientation) that `preset` means here."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown neat_text preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    layout = layout_of(model)
    if layout is None:
        raise _unknown_type_error(model)
    fields: dict[str, Any] = {"targets": list(layout.qv), "layers_pattern": layout.layers_pattern}
    if layout.fused_qv_blocks:
        fields["slices"] = {name: {"num_blocks": 3, "blocks": list(layout.fused_qv_blocks)} for name in layout.qv}
    if preset == "neat_s":
        layers = _num_layers(model)
        fields.update(rank=1, layers=list(range(layers // 3, layers)))
    elif preset == "neat_l":
        fields.update(rank=8)
    elif preset == "paper_llm":
        if not layout.llm:
            raise ValueError(f"preset 'paper_llm' is for decoder LLMs (llama, mistral, qwen2, gemma), not "
                             f"model_type {model_type(model)!r}; use 'qv', 'neat_s' or 'neat_l'.")
        fields = {"targets": list(layout.llm), "layers_pattern": layout.layers_pattern, "orientation": "in",
                  "rank": 32}
    return fields
