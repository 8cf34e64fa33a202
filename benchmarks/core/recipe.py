"""The one recipe type of every suite: how a method trains on one dataset or task, each value with its source.

Plain data (no torch): the command lines check recipes before anything heavy loads. Every suite's tables
(benchmarks/<suite>/recipes.py) build `Recipe`s; tests fail on a value without a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

COMMAND_LINE = "command line"
SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class Recipe:
    """One method on one dataset or task.

    The loop: `lr` (the adapter's, or all weights' for full fine-tuning), `head_lr` (the classifier head's; None
    when the model has none), `weight_decay`, `epochs`, `batch_size` (the effective batch per optimizer step:
    gradient accumulation makes it whatever the micro-batch), `clip_grad` (gradient-norm clip; None: none), a
    linear warm-up over `warmup` of the steps (or `warmup_steps` steps, which wins) then `schedule` ("linear":
    linear decay to zero; "cosine": half a cosine to zero, transformers' get_cosine_schedule_with_warmup),
    `micro_batch` (per process and step: memory only; None: the suite's or --micro-batch).
    The sweep: `lrs`, the grid a run sweeps (selected on validation; empty: the recipe's own value only) of the field
    `sweep` names ("lr", or "head_lr" for the linear probe).
    `options`: the MethodOptions fields the recipe fixes (ranks, alpha, scale...); `data`: the suite's data and
    decoding settings (crop scale; sequence cutoff, prompt masking, decoding limits...).
    `sources`: {loop field, option or data name: where its value comes from, or "our choice: why"}."""

    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    head_lr: float | None = None
    clip_grad: float | None = 1.0
    warmup: float = 0.0
    warmup_steps: int | None = None
    schedule: str = "linear"
    micro_batch: int | None = None
    lrs: tuple[float, ...] = ()
    sweep: str = "lr"
    options: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")

    @property
    def grid(self) -> tuple[float, ...]:
        """The learning rates to train: the sweep grid, else the recipe's value of the swept field."""
        return self.lrs or (getattr(self, self.sweep),)

    def at(self, lr: float) -> Recipe:
        """This recipe with its swept field (lr or head_lr) set to `lr`."""
        return replace(self, **{self.sweep: lr})

    def with_values(self, note: str, **values: Any) -> Recipe:
        """This recipe with loop fields replaced, each cited by `note`."""
        return replace(self, **values, sources={**self.sources, **{k: note for k in values}})

    def with_options(self, note: str, **options: Any) -> Recipe:
        """This recipe with method options set, each cited by `note`."""
        return replace(self, options={**self.options, **options},
                       sources={**self.sources, **{k: note for k in options}})

    def with_data(self, note: str, **data: Any) -> Recipe:
        """This recipe with data / decoding settings set, each cited by `note`."""
        return replace(self, data={**self.data, **data}, sources={**self.sources, **{k: note for k in data}})

    def cited(self, note: str) -> Recipe:
        """This recipe with every value that has no source yet cited by `note`."""
        return replace(self, sources={**{k: note for k in self.names()}, **self.sources})

    def names(self) -> list[str]:
        """Every value that needs a source: the loop fields, the options and the data settings."""
        loop = [f.name for f in fields(self) if f.name not in ("options", "data", "sources")]
        return loop + list(self.options) + list(self.data)

    def uncited(self) -> list[str]:
        """Values without a source (a defect: every value cites where it comes from)."""
        return [name for name in self.names() if not str(self.sources.get(name, "")).strip()]

    def describe(self) -> dict[str, Any]:
        """The values and their sources, for result files."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        return {**values, "options": dict(self.options), "data": dict(self.data), "sources": dict(self.sources)}


def cited(note: str, lr: float, epochs: int, batch_size: int, **values: Any) -> Recipe:
    """A Recipe whose every loop value is cited by `note`."""
    return Recipe(lr, epochs, batch_size, **values).cited(note)
