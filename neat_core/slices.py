"""Which part of a layer an adapter adapts: the whole weight, or some equal row blocks of a fused projection (timm's
`attn.qkv`: q and v of three), and the tensor shapes of the weight network that adapts it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import AUTO_SCALE, NeatConfig


@dataclass(frozen=True)
class SliceSpec:
    """Which equal row blocks of a fused projection are adapted (None: the whole weight)."""

    num_blocks: int = 1
    blocks: tuple[int, ...] = (0,)

    @property
    def whole(self) -> bool:
        return self.num_blocks == 1

    @property
    def index(self) -> slice | list[int]:
        """The adapted blocks as a slice when evenly spaced (a view, no copy), else as a list."""
        b = self.blocks
        step = b[1] - b[0] if len(b) > 1 else 1
        if step > 0 and all(b2 - b1 == step for b1, b2 in zip(b, b[1:])):
            return slice(b[0], b[-1] + 1, step)
        return list(b)



def network_width(in_features: int, out_features: int, orientation: str, slices: SliceSpec) -> int:
    """The width of the rows the weight network reads: a slice's output rows of W^T ("out") or the rows of W ("in")."""
    return out_features // slices.num_blocks if orientation == "out" else in_features


def network_shapes(in_features: int, out_features: int, config: NeatConfig,
                   slices: SliceSpec) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the network NeatLinear would build (no allocation), keyed like its state dict: the
    parameters, and `scales` (one per slice) for scale="auto"."""
    num, rank = len(slices.blocks), config.rank
    dim = network_width(in_features, out_features, config.orientation, slices)
    shapes = {"A": (num, dim, rank)}
    for i in range((config.depth - 2) // 2):
        shapes[f"encoders.{i}"] = (num, rank, rank)
    for i in range((config.depth - 2) // 2):
        shapes[f"decoders.{i}"] = (num, rank, rank)
    shapes["B"] = (num, rank, dim)
    if config.scale == AUTO_SCALE:
        shapes["scales"] = (num,)
    return shapes



def add_blocks(t: torch.Tensor, dim: int, slices: SliceSpec, additions: torch.Tensor) -> torch.Tensor:
    """t with additions[k] added to row block slices.blocks[k] along `dim`; other blocks are copied bit-exactly."""
    if slices.whole:
        return t + additions[0]
    dim = dim % t.dim()
    parts = list(t.unflatten(dim, (slices.num_blocks, -1)).unbind(dim))
    for k, block in enumerate(slices.blocks):
        parts[block] = parts[block] + additions[k]
    return torch.cat(parts, dim)


