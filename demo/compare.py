"""What the page shows for two predictions: top-k tables for the bar plots, per-model stats, the verdict."""

from __future__ import annotations

import pandas as pd
import torch

from .models import Classifier

TOP_K = 5


def top_k(probs: torch.Tensor, labels: list[str], k: int = TOP_K) -> pd.DataFrame:
    """The k most probable labels, most probable first (columns: label, probability in %)."""
    values, indices = probs.topk(min(k, probs.numel()))
    return pd.DataFrame({"label": [labels[i] for i in indices.tolist()],
                         "probability": [round(v * 100, 2) for v in values.tolist()]})


def stats(classifier: Classifier, latency_ms: float) -> str:
    return (f"**{classifier.method}** · {'merged' if classifier.merged else 'unmerged'} · latency "
            f"**{latency_ms:.1f} ms** (best of {classifier.repeats}, batch 1, {_device(classifier)}) · "
            f"**{classifier.trainable:,}** trainable parameters (adapter + head)")


def _device(classifier: Classifier) -> str:
    return next(classifier.model.parameters()).device.type.upper()


def verdict(a: pd.DataFrame, b: pd.DataFrame, name_a: str = "NEAT", name_b: str = "LoRA") -> str:
    """Whether the two top-1 labels agree, and which labels only one model has in its top k."""
    top_a, top_b = a["label"].iloc[0], b["label"].iloc[0]
    p_a, p_b = a["probability"].iloc[0], b["probability"].iloc[0]
    if top_a == top_b:
        lines = [f"**Agree:** both predict **{top_a}** ({name_a} {p_a:.1f}%, {name_b} {p_b:.1f}%)."]
    else:
        lines = [f"**Disagree:** {name_a} predicts **{top_a}** ({p_a:.1f}%), {name_b} predicts **{top_b}** "
                 f"({p_b:.1f}%)."]
    only_a = [x for x in a["label"] if x not in set(b["label"])]
    only_b = [x for x in b["label"] if x not in set(a["label"])]
    if only_a or only_b:
        lines.append(f"Only in {name_a}'s top {len(a)}: {', '.join(only_a) or 'none'}; only in {name_b}'s top "
                     f"{len(b)}: {', '.join(only_b) or 'none'}.")
    elif list(a["label"]) != list(b["label"]):
        lines.append(f"Same top-{len(a)} labels, in a different order.")
    else:
        lines.append(f"Same top-{len(a)} labels in the same order.")
    return "\n\n".join(lines)
