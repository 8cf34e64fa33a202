"""The weight network f of NEAT and its activation registry.

f reads a frozen weight M (rows of length d) and returns H = the last hidden state (rows of length r):

    h = sigma(M A)                              A: d x r
    for each encoder e_i:   push h; h = sigma(h e_i)
    for each decoder d_i:   h = sigma(h d_i) + (pushed h, mirrored)
    H = h                                       the update is then s * H B, B: r x d

Several independent networks (one per adapted slice of a fused projection) are stored stacked along a
leading dimension S so that all slices of one layer run in one batched product.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def sin2pi(x: torch.Tensor) -> torch.Tensor:
    """sin(2*pi*x), the periodic activation of the paper's section 5."""
    return torch.sin(2 * math.pi * x)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# Named functions only (no lambdas), so that a patched model pickles (torch.save(model)).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "sin": sin2pi,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "identity": identity,
}


def _kaiming_uniform(num: int, fan_in: int, fan_out: int) -> torch.Tensor:
    """`num` matrices fan_in x fan_out drawn like nn.Linear(fan_in, fan_out).weight (kaiming, a=sqrt(5))."""
    weight = torch.empty(num, fan_out, fan_in)
    for w in weight:
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return weight.transpose(1, 2).contiguous()


class NeatNetwork(nn.Module):
    """S stacked weight networks of width `rank`, reading rows of length `dim`.

    Parameters (all fp32 by default): A (S, dim, r), encoders[i] / decoders[i] (S, r, r), B (S, r, dim).
    B starts at zero so the adapted layer starts equal to the base layer. With `auto_scale` (NeatConfig scale
    "auto") the network also holds `scales` (S,), a persistent buffer: each slice's s, which the layer that owns
    the network computes once at injection (NaN until then) and which is saved and loaded with the parameters.
    """

    def __init__(self, num: int, dim: int, rank: int, depth: int, activation: str,
                 dtype: torch.dtype = torch.float32, device: torch.device | None = None,
                 auto_scale: bool = False) -> None:
        super().__init__()
        pairs = (depth - 2) // 2
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.A = nn.Parameter(_kaiming_uniform(num, dim, rank).to(device=device, dtype=dtype))
        self.encoders = nn.ParameterList(
            [nn.Parameter(_kaiming_uniform(num, rank, rank).to(device=device, dtype=dtype)) for _ in range(pairs)])
        self.decoders = nn.ParameterList(
            [nn.Parameter(_kaiming_uniform(num, rank, rank).to(device=device, dtype=dtype)) for _ in range(pairs)])
        self.B = nn.Parameter(torch.zeros(num, rank, dim, device=device, dtype=dtype))
        self.register_buffer("scales", torch.full((num,), math.nan, device=device, dtype=dtype) if auto_scale else None)

    def hidden(self, rows: torch.Tensor) -> torch.Tensor:
        """H for rows (S, n, dim) -> (S, n, r), computed in the dtype of `rows`."""
        dtype = rows.dtype
        h = self.act(rows @ self.A.to(dtype))
        skips = []
        for enc in self.encoders:
            skips.append(h)
            h = self.act(h @ enc.to(dtype))
        for dec, skip in zip(self.decoders, reversed(skips)):
            h = self.act(h @ dec.to(dtype)) + skip
        return h

    def extra_repr(self) -> str:
        num, dim, rank = self.A.shape
        return (f"slices={num}, dim={dim}, rank={rank}, depth={2 + 2 * len(self.encoders)}, activation={self.activation}"
                + (", scale=auto" if self.scales is not None else ""))
