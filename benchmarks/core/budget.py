"""Trainable-parameter budgets, exactly and without training: count a method's adapter parameters on a model
built on the meta device (no memory, no init cost), and size one method to another's budget.

`method_params(build, method, options, kind)` counts the parameters a method trains outside the classifier head
(`source_params`: on a model source's architecture, cached);
`match_to(reference, methods, ...)` sets each method's size knob (catalog.Method.knob: LoRA/DoRA r, NEAT rank,
FourierFT n, VeRA r) to the value whose count is closest to the reference method's. Used by `--match-params`,
`--dry-run` and the ablation suite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from . import methods as M
from .catalog import MethodOptions, size_knob
from .models import ModelSource, architecture, text_architecture

MAX_KNOB = 1 << 20


def method_params(build: Callable[[], nn.Module], method: str, options: MethodOptions, kind: str = "image") -> int:
    """Parameters `method` trains outside the classifier head on the model `build()` makes, of `kind` (built on the
    meta device: exact counts, no weights)."""
    with torch.device("meta"):
        model = build()
    heads = M.head_names(model, kind)
    return M.parameter_counts(M.build(method, model, options, kind), heads)["method_params"]


@functools.lru_cache(maxsize=None)
def source_params(source: ModelSource, method: str, options: MethodOptions, kind: str = "image") -> int:
    """`method_params` on `source`'s architecture (image: the timm model; text: the transformers classifier from its
    config), cached: sizing and dry runs count the same (method, options) many times, and a text config read may
    ask the Hub."""
    build = architecture if kind == "image" else text_architecture
    return method_params(lambda: build(source, 2), method, options, kind)


def resized(method: str, options: MethodOptions, size: int) -> MethodOptions:
    """`options` with `method`'s size knob set to `size` (LoRA/DoRA keep their alpha / r ratio, so the update's
    scale, and the learning rate that suits it, stay the same)."""
    knob = size_knob(method)
    changes: dict = {knob: size}
    if knob == "lora_r":
        alpha = options.lora_alpha * size / options.lora_r
        changes["lora_alpha"] = int(alpha) if float(alpha).is_integer() else alpha
    return replace(options, **changes)


def closest_size(target: int, count: Callable[[int], int]) -> tuple[int, int]:
    """(size, count(size)) for the size >= 1 whose count is closest to `target` (ties: the smaller size);
    `count` must not decrease as the size grows."""
    count = functools.lru_cache(maxsize=None)(count)
    hi = 1
    while count(hi) < target and hi < MAX_KNOB:
        hi *= 2
    lo = max(1, hi // 2)
    while lo < hi:   # the smallest size whose count reaches the target
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [s for s in (lo - 1, lo) if s >= 1]
    best = min(candidates, key=lambda s: (abs(count(s) - target), s))
    return best, count(best)


def match_to(reference: str, methods: list[str], options: Callable[[str], MethodOptions],
             count: Callable[[str, MethodOptions], int],
             built_by: Callable[[str], str] = lambda name: name) -> dict[str, MethodOptions]:
    """{method: options} with every method that has a size knob (but `reference`) sized to the reference's
    adapter parameters; the others keep `options(method)`. `built_by(name)` is the registered method whose knob
    a name turns (the ablation suite's variants: "neat-qv-mlp" -> "neat")."""
    target = count(reference, options(reference))
    matched = {}
    for method in methods:
        base, builder = options(method), built_by(method)
        if method == reference or size_knob(builder) is None:
            matched[method] = base
            continue
        size, _ = closest_size(target, lambda s: count(method, resized(builder, base, s)))
        matched[method] = resized(builder, base, size)
    return matched
