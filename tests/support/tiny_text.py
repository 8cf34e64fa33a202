"""Tiny random-config transformers classifiers (no downloads) shared by the core and front-end tests."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

import neat_core
import neat_text


H, LAYERS, INTER = 32, 3, 64


_BERTLIKE = dict(hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=INTER,
                 vocab_size=100, max_position_embeddings=64)


_LLM = dict(hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            intermediate_size=INTER, vocab_size=100, pad_token_id=0)


TINY: dict[str, dict] = {
    "bert": _BERTLIKE,
    "roberta": _BERTLIKE,
    "xlm-roberta": _BERTLIKE,
    "electra": {**_BERTLIKE, "embedding_size": H},
    "deberta-v2": _BERTLIKE,
    "distilbert": dict(dim=H, n_layers=LAYERS, n_heads=2, hidden_dim=INTER, vocab_size=100, max_position_embeddings=64),
    "vit": dict(hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=INTER,
                image_size=16, patch_size=8),
    "llama": _LLM, "mistral": _LLM, "qwen2": _LLM, "gemma": _LLM,
    "gpt2": dict(n_embd=H, n_layer=LAYERS, n_head=2, vocab_size=100, n_positions=64, pad_token_id=0),
}


QV_OUT = {t: (H, H // 2) if t in ("llama", "mistral", "qwen2", "gemma") else (H, H) for t in TINY}


def tiny_model(model_type: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """A tiny random classifier of `model_type` in eval mode (fp32, CPU)."""
    torch.manual_seed(seed)
    fields = {"initializer_range": 0.2, **TINY[model_type], **overrides}  # larger weights: visible adapter effects
    config = AutoConfig.for_model(model_type, num_labels=3, **fields)
    auto = AutoModelForImageClassification if model_type == "vit" else AutoModelForSequenceClassification
    return auto.from_config(config).eval()


def tiny_inputs(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if model.config.model_type == "vit":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=gen)}
    return {"input_ids": torch.randint(1, 100, (2, 7), generator=gen)}


def logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def randomize(model: torch.nn.Module, std: float = 0.3, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in neat_core.neat_layers(model):
            for p in layer.neat.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def head_params(model: torch.nn.Module) -> int:
    """Parameters of the model's classification head (one copy: the model's own, also when an adapter keeps its
    copy beside it)."""
    heads = [model.get_submodule(n) for n in neat_text.head_names(model)]
    return sum(p.numel() for h in heads for p in getattr(h, "original", h).parameters())


def expected_adapter_params(model_type: str, preset: str) -> int:
    """Adapter parameters by hand: each adapted weight gets A (dim x r) and B (r x dim)."""
    q_out, v_out = QV_OUT[model_type]
    if preset == "paper_llm":  # orientation 'in': dim = in_features of q, k, v, up (H) and down (INTER)
        return LAYERS * 2 * 32 * (4 * H + INTER)
    rank, layers = {"qv": (8, LAYERS), "neat_l": (8, LAYERS), "neat_s": (1, LAYERS - LAYERS // 3)}[preset]
    return layers * 2 * rank * (q_out + v_out)


def _snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool], list[str]]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    return state, grads, [type(m).__name__ for m in model.modules()]


def _assert_unchanged(model: torch.nn.Module, snapshot) -> None:
    state, grads, kinds = _snapshot(model)
    assert kinds == snapshot[2] and grads == snapshot[1]
    assert state.keys() == snapshot[0].keys() and all(torch.equal(state[k], snapshot[0][k]) for k in state)
    assert not neat_core.adapter_configs(model)


class LabelledIds(torch.utils.data.Dataset):
    """Eight random token sequences with three-class labels, for Trainer runs."""

    def __init__(self, n: int = 8) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 100, (n, 7), generator=gen)
        self.labels = torch.randint(0, 3, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}
