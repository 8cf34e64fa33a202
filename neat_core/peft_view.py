"""How PEFT (checked against peft 0.21.2) reads a model's module names: what both PEFT exports (`to_peft`, PEANuT;
`to_lora`, LoRA) and the PEANuT import need to agree with it, without importing peft.

- PEFT sees the base model: a NEAT layer is one module, its insides do not exist.
- list-form `target_modules` select a module whose name is a target or ends with "." + a target; never one on or
  inside a module that `modules_to_save` names (peft.tuners.tuners_utils.check_target_module_exists);
- `modules_to_save` wraps every module whose name ends with an entry (peft.utils.other._set_trainable); its
  tensors are saved under their plain names, as adapter tensors are, after the prefix `base_model.model.`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from .config import NeatConfig
from .inject import plain_modules

PEFT_PREFIX = "base_model.model."


def peft_module_names(model: nn.Module) -> list[str]:
    """The model's module names as PEFT sees them (NEAT layers count, their insides do not; no root "")."""
    return [name for name in plain_modules(model) if name]


def inside_saved(name: str, modules_to_save: list[str]) -> bool:
    """Whether module `name` is on or inside a module that `modules_to_save` names (PEFT never adapts it there)."""
    return any(re.match(rf"(^|.*\.){m}($|\..*)", name) for m in modules_to_save)


def peft_adapts(names: list[str], targets: list[str], modules_to_save: list[str]) -> set[str]:
    """The names that PEFT's list-form `target_modules` select (check_target_module_exists)."""
    chosen = set(targets)
    return {n for n in names if (n in chosen or any(n.endswith("." + t) for t in targets))
            and not inside_saved(n, modules_to_save)}


def peft_targets(names: list[str], candidates: list[list[str]], adapted: list[str],
                 modules_to_save: list[str]) -> list[str] | None:
    """The first candidate `target_modules` with which PEFT adapts exactly `adapted`, else None."""
    for candidate in candidates:
        if candidate and peft_adapts(names, candidate, modules_to_save) == set(adapted):
            return candidate
    return None


def peft_saved_modules(model: nn.Module, patterns: list[str],
                       keep: Callable[[str, nn.Module], bool] = lambda name, module: True) -> list[str]:
    """The modules PEFT wraps for `modules_to_save` (a name ending with an entry, outermost only) that have parameters
    and pass `keep`."""
    chosen: list[str] = []
    for name, module in plain_modules(model).items():
        if (name and any(name.endswith(p) for p in patterns) and not any(name.startswith(c + ".") for c in chosen)
                and any(True for _ in module.parameters()) and keep(name, module)):
            chosen.append(name)
    return chosen


def parameter_entries(model: nn.Module, config: NeatConfig) -> list[str]:
    """The `modules_to_save` entries that name a parameter, not a module (PEFT's modules_to_save names modules)."""
    params = dict(model.named_parameters())
    return [n for n in config.modules_to_save if n in params]
