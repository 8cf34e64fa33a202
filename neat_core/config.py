"""`NeatConfig`: the validated description of one NEAT adapter, with a JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .network import ACTIVATIONS

ORIENTATIONS = ("out", "in")
AUTO_SCALE = "auto"
COMPUTE_PATHS = ("auto", "factored", "materialized")


@dataclass
class NeatConfig:
    """Hyper-parameters and placement of a NEAT adapter.

    rank:         width r of the weight network.
    depth:        number of weight matrices in the network, counted as the paper does (2 = A, B;
                  4 = A, e1, d1, B; ...); even and >= 2.
    activation:   sigma: relu (default), sin (= sin(2*pi*x)), gelu, silu, tanh, identity.
    scale:        s in dW = s * f(W0): a number, or "auto": per layer and adapted slice, s is computed once at
                  injection from the frozen weight so that rms(s * H) at init equals LoRA's rms(A) =
                  1 / sqrt(3 * in_features) for the same layer (H = the network's output f(W0) at init, in fp32).
                  The computed values are stored in the adapter (`NeatNetwork.scales`) and saved with it;
                  loading uses them, never recomputes them.
    orientation:  "out": the network reads rows of W0 = W^T (vectors of length out_features; the paper's
                  vision code and PEFT); "in": rows of W (length in_features; the paper's LLM code).
    targets:      module-name patterns: a plain string matches a name or a dotted suffix of it
                  ("attn.qkv"), a string with regex characters must match the whole name.
    layers:       only modules inside these block indices (None: all). The block index is the integer
                  after `layers_pattern` in the module name, or the first integer in it.
    layers_pattern: name of the block container ("blocks", "layer", "h"...); None: first integer.
    exclude:      patterns (same rules as targets) never adapted.
    slices:       fused projections whose output rows are equal blocks, mapping a target pattern to
                  {"num_blocks": n, "blocks": [...]}; only the listed blocks are adapted, each with its own
                  network (timm attn.qkv -> {"num_blocks": 3, "blocks": [0, 2]} adapts q and v).
    modules_to_save: modules trained fully and saved with the adapter (classifier heads).
    compute:      "auto" (documented rule in `NeatLinear.uses_materialized`), "factored" or "materialized".
    """

    rank: int = 8
    depth: int = 2
    activation: str = "relu"
    scale: float | str = 1.0
    orientation: str = "out"
    targets: list[str] = field(default_factory=list)
    layers: list[int] | None = None
    layers_pattern: str | None = None
    exclude: list[str] = field(default_factory=list)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    modules_to_save: list[str] = field(default_factory=list)
    compute: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            self.targets = [self.targets]
        if isinstance(self.exclude, str):
            self.exclude = [self.exclude]
        if isinstance(self.layers, int) and not isinstance(self.layers, bool):
            self.layers = [self.layers]
        self.targets = list(self.targets)
        self.exclude = list(self.exclude)
        self.modules_to_save = list(self.modules_to_save)
        if self.layers is not None:
            self.layers = [int(i) for i in self.layers]
        if self._slices_well_formed():
            self.slices = {k: {"num_blocks": int(v["num_blocks"]), "blocks": [int(b) for b in v["blocks"]]}
                           for k, v in self.slices.items()}
        self.validate()

    def _slices_well_formed(self) -> bool:
        return isinstance(self.slices, dict) and all(
            isinstance(v, dict) and {"num_blocks", "blocks"} <= set(v) for v in self.slices.values())

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what is allowed."""
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank <= 0:
            raise ValueError(f"NeatConfig.rank must be a positive integer, got {self.rank!r}.")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 2 or self.depth % 2:
            raise ValueError(
                f"NeatConfig.depth must be an even integer >= 2 (2 = A,B; 4 = A,e1,d1,B; ...), got {self.depth!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"NeatConfig.activation {self.activation!r} is unknown; choose one of "
                             f"{', '.join(ACTIVATIONS)}.")
        if self.scale != AUTO_SCALE and (not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool)):
            raise ValueError(f"NeatConfig.scale must be a number or {AUTO_SCALE!r}, got {self.scale!r}.")
        if self.scale != AUTO_SCALE and (not math.isfinite(self.scale) or self.scale == 0):
            raise ValueError(f"NeatConfig.scale must be finite and non-zero (s multiplies the update; 0 would never "
                             f"train the adapter), or {AUTO_SCALE!r}; got {self.scale!r}.")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"NeatConfig.orientation must be 'out' or 'in', got {self.orientation!r}.")
        if self.compute not in COMPUTE_PATHS:
            raise ValueError(f"NeatConfig.compute must be one of {', '.join(COMPUTE_PATHS)}, got {self.compute!r}.")
        if not all(isinstance(t, str) and t for t in self.targets):
            raise ValueError(f"NeatConfig.targets must be non-empty strings, got {self.targets!r}.")
        if self.layers is not None and any(i < 0 for i in self.layers):
            raise ValueError(f"NeatConfig.layers must be non-negative block indices, got {self.layers!r}.")
        if not self._slices_well_formed():
            raise ValueError("NeatConfig.slices must map a target pattern to {'num_blocks': n, 'blocks': [...]}, "
                             f"got {self.slices!r}.")
        for pattern, spec in self.slices.items():
            n, blocks = spec["num_blocks"], spec["blocks"]
            if n < 2 or not blocks or len(set(blocks)) != len(blocks) or not all(0 <= b < n for b in blocks):
                raise ValueError(f"NeatConfig.slices[{pattern!r}] needs num_blocks >= 2 and distinct blocks in "
                                 f"[0, {n}), got {spec!r}.")

    # --- JSON round trip -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NeatConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown NeatConfig field(s) {unknown}; known fields: {sorted(known)}.")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NeatConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> NeatConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def structure(self) -> dict[str, Any]:
        """The fields that decide parameter shapes and placement (compared when loading)."""
        data = self.to_dict()
        data.pop("compute")
        return data
