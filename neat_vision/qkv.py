"""timm's fused `attn.qkv` as three separate `q`, `k`, `v` linears, and back.

PEFT adapts whole modules, so it cannot adapt only the q and v rows of a fused qkv projection. `split_qkv`
replaces every fused `qkv` nn.Linear (3·D outputs) of a timm model by a `QKV` container whose children `q`, `k`,
`v` hold the three row blocks; its output is their concatenation, so the model computes the same function and
PEFT can target `attn.qkv.q` and `attn.qkv.v`. `merge_qkv` puts plain fused linears back (after PEFT's
`merge_and_unload`), so the state dict has timm's own keys again (`blocks.0.attn.qkv.weight`, `.bias`).
"""

from __future__ import annotations

import torch
from torch import nn

QKV_NAME = "qkv"
PARTS = ("q", "k", "v")
BIAS_SWITCH = "qkv_bias_separate"  # Eva / SwinV2: call the qkv module instead of F.linear on qkv.weight


class QKV(nn.Module):
    """q, k and v projections whose outputs are concatenated, as one fused qkv linear computes them.

    `weight` and `bias` read the fused tensors (concatenated, for code that reads `qkv.weight`); they are
    copies, never trained through."""

    def __init__(self, q: nn.Linear, k: nn.Linear, v: nn.Linear) -> None:
        super().__init__()
        self.q, self.k, self.v = q, k, v
        self.in_features = q.in_features
        self.out_features = q.out_features + k.out_features + v.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    def _fused(self, name: str) -> torch.Tensor | None:
        parts = [getattr(_linear(getattr(self, p)), name) for p in PARTS]
        return None if parts[0] is None else torch.cat([t.detach() for t in parts], dim=0)

    @property
    def weight(self) -> torch.Tensor:
        return self._fused("weight")

    @property
    def bias(self) -> torch.Tensor | None:
        return self._fused("bias")


def _linear(module: nn.Module) -> nn.Module:
    """The plain linear under a PEFT wrapper (its `base_layer`), or the module itself."""
    return getattr(module, "base_layer", module)


def _fused_qkv(model: nn.Module) -> list[tuple[nn.Module, nn.Linear]]:
    """(attention module, its fused qkv linear) for every module with a `qkv` nn.Linear of 3·k outputs."""
    found = []
    for module in model.modules():
        qkv = getattr(module, QKV_NAME, None)
        if type(qkv) is nn.Linear and qkv.out_features % 3 == 0:
            found.append((module, qkv))
    return found


def _part(qkv: nn.Linear, index: int) -> nn.Linear:
    size = qkv.out_features // 3
    rows = slice(index * size, (index + 1) * size)
    part = nn.Linear(qkv.in_features, size, bias=qkv.bias is not None, device=qkv.weight.device,
                     dtype=qkv.weight.dtype)
    with torch.no_grad():
        part.weight.copy_(qkv.weight[rows])
        if qkv.bias is not None:
            part.bias.copy_(qkv.bias[rows])
    part.weight.requires_grad_(qkv.weight.requires_grad)
    if qkv.bias is not None:
        part.bias.requires_grad_(qkv.bias.requires_grad)
    return part


def split_qkv(model: nn.Module) -> nn.Module:
    """Replace every fused `qkv` linear of `model` by a `QKV` container of separate q, k, v linears (same
    outputs); returns the same model. Attention modules with a `qkv_bias_separate` switch (Eva, SwinV2) are set
    to call the module, so adapters on q and v are used; `merge_qkv` restores the switch."""
    found = _fused_qkv(model)
    if not found:
        raise ValueError(f"{type(model).__name__} has no fused `{QKV_NAME}` nn.Linear to split (the timm "
                         "ViT, DeiT, Eva and Swin families have one per attention block).")
    for attention, qkv in found:
        container = QKV(*(_part(qkv, i) for i in range(3)))
        if hasattr(attention, BIAS_SWITCH):
            container.bias_separate_was = getattr(attention, BIAS_SWITCH)
            setattr(attention, BIAS_SWITCH, True)
        setattr(attention, QKV_NAME, container)
    return model


def merge_qkv(model: nn.Module) -> nn.Module:
    """Replace every `QKV` container by one fused nn.Linear again (timm's module and state-dict keys); returns
    the same model. Adapters on q, k or v must be merged and unloaded first (PEFT's `merge_and_unload`)."""
    for module in list(model.modules()):
        container = getattr(module, QKV_NAME, None)
        if not isinstance(container, QKV):
            continue
        parts = [getattr(container, p) for p in PARTS]
        wrapped = [(name, part) for name, part in zip(PARTS, parts) if type(part) is not nn.Linear]
        if wrapped:
            kinds = sorted({f"{type(part).__module__}.{type(part).__name__}" for _, part in wrapped})
            raise ValueError(f"attn.qkv.{'/'.join(n for n, _ in wrapped)} still carries an adapter "
                             f"({', '.join(kinds)}); merge and unload it first (PEFT: model = "
                             "model.merge_and_unload()), then merge_qkv.")
        first = parts[0]
        fused = nn.Linear(first.in_features, container.out_features, bias=first.bias is not None,
                          device=first.weight.device, dtype=first.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([p.weight for p in parts]))
            if fused.bias is not None:
                fused.bias.copy_(torch.cat([p.bias for p in parts]))
        fused.weight.requires_grad_(first.weight.requires_grad)
        if fused.bias is not None:
            fused.bias.requires_grad_(first.bias.requires_grad)
        if hasattr(container, "bias_separate_was"):
            setattr(module, BIAS_SWITCH, container.bias_separate_was)
        setattr(module, QKV_NAME, fused)
    return model
