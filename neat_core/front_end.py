"""The one `patch`: NEAT on a model of a known kind, filled from a front end's preset table.

A front end (neat_vision for timm, neat_text for transformers) is data: its `FrontEnd` says how to turn a preset name
into NeatConfig fields for a model, which modules are the model's classifier head, and which preset is the default.
`neat_vision.patch` and `neat_text.patch` are this function with their own table.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .config import NeatConfig
from .inject import inject


@dataclass(frozen=True)
class FrontEnd:
    """A front end's tables: `preset_fields(model, name)` -> NeatConfig fields, `head_names(model)` -> the classifier
    head's module names, the default preset, and the name users call it by (for messages)."""

    name: str
    preset_fields: Callable[[nn.Module, str], dict[str, Any]]
    head_names: Callable[[nn.Module], list[str]]
    default_preset: str = "qv"


FIELDS = tuple(f.name for f in dataclasses.fields(NeatConfig))


def check_fields(fields: dict[str, Any], where: str) -> None:
    """A TypeError for a keyword that is no NeatConfig field, naming the nearest one."""
    for key in fields:
        if key not in FIELDS:
            near = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"{where} got an unknown keyword {key!r}.{hint} NeatConfig fields: {', '.join(FIELDS)}.")


def config_for(model: nn.Module, front: FrontEnd, config: NeatConfig | None, preset: str | None,
               fields: dict[str, Any], heads: list[str]) -> NeatConfig:
    """The NeatConfig `patch(model, config, preset, **fields)` means: `config` (with `fields` replaced) taken as
    given; otherwise the preset's fields (none when the user names `targets` without a preset) updated by `fields`.
    `heads` join `modules_to_save`."""
    check_fields(fields, f"{front.name}.patch()")
    if config is not None:
        if preset is not None:
            raise ValueError("Give either config= or preset=, not both.")
        config = config.replace(**fields) if fields else config
    else:
        base = {} if ("targets" in fields and preset is None) else front.preset_fields(model, preset or
                                                                                       front.default_preset)
        config = NeatConfig(**{**base, **fields})
    if heads:
        config = config.replace(modules_to_save=list(dict.fromkeys([*config.modules_to_save, *heads])))
    return config


def patch(model: nn.Module, front: FrontEnd, config: NeatConfig | None = None, preset: str | None = None,
          train_head: bool = True, adapter: str = "default", **fields: Any) -> nn.Module:
    """Put NEAT on `model` and return the same object: `config` gives the whole NeatConfig; otherwise `preset`
    (default: the front end's) chooses targets for the model, and any NeatConfig field may be given as a keyword
    (targets=[...] replaces the preset's). The base is frozen; the adapter and, unless train_head=False, the
    classifier head are trainable (the head is the adapter's own: each adapter keeps its copy)."""
    heads = front.head_names(model) if train_head else []
    return inject(model, config_for(model, front, config, preset, fields, heads), adapter=adapter)
