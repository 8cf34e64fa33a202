"""Modules an adapter trains whole (`NeatConfig.modules_to_save`: classifier heads), one copy per adapter.

Like PEFT's `ModulesToSaveWrapper` (`peft/utils/other.py`): `inject` replaces such a module by a `SavedModule` that
keeps the model's own module (`original`, frozen) and a copy per adapter (`copies`, the active adapter's trainable),
so that two task adapters on one backbone each keep their head. The forward runs the active adapter's copy; the
original when no adapter with a copy is active, inside `disabled(model)`, and for "__base__" samples; with
`adapters_per_sample`, each sample's rows go through its own adapter's copy.

State dicts keep the model's contract (docs/ARCHITECTURE.md): the copy the forward uses is written under the module's
own names (`head.weight`), so a plain timm / transformers model loads the trained head; every other copy under
`<module>.neat_saved.<adapter>.<param>`, and the original, while an adapter's copy stands in its names, under
`<module>.neat_saved.__base__.<param>`. Loading maps them back; a plain checkpoint (no `neat_saved` keys: a
fine-tuned base, a run to resume) loads into the original and the module in use, and the other adapters' copies
keep their values.

dtypes: the copies are trained weights, so they stay fp32 when the model is cast to fp16 / bf16 (the original
follows the cast); their products run in the input's dtype.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .casting import adapter_dtype, moved_keeping_fp32
from .per_sample import NO_ADAPTER, SampleAdapters

SAVED = "neat_saved."
OWN = frozenset({"original", "copies", "active", "disabled", "sample_adapters", "current"})


class SavedModule(nn.Module):
    """A module that adapters train whole, one copy per adapter (see the module docstring)."""

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original = original.requires_grad_(False)
        self.copies = nn.ModuleDict()
        self.active: str | None = None
        self.disabled = False
        self.sample_adapters: SampleAdapters | None = None
        self.register_state_dict_post_hook(_state_dict_under_original_names)
        self.register_load_state_dict_pre_hook(_load_from_original_names)

    # --- the copies ---------------------------------------------------------------------------------------------
    def add(self, adapter: str) -> nn.Module:
        """A fresh copy of the original for `adapter` (the module as the model had it before any adapter trained)."""
        copied = copy.deepcopy(self.original)
        for source, target in zip(self.original.parameters(), copied.parameters()):
            target.data = target.data.to(adapter_dtype(source.dtype))
        self.copies[adapter] = copied
        return copied

    def remove(self, adapter: str) -> None:
        del self.copies[adapter]
        if self.active == adapter:
            self.active = None

    def set_active(self, adapter: str | None) -> None:
        """Use and train `adapter`'s copy (None, or an adapter without one: the original, frozen)."""
        self.active = adapter if adapter in self.copies else None
        for name, module in self.copies.items():
            module.requires_grad_(name == self.active)

    @property
    def current(self) -> nn.Module:
        """The module the forward runs now."""
        if self.disabled or self.active is None:
            return self.original
        return self.copies[self.active]

    def module_for(self, adapter: str | None) -> nn.Module:
        """`adapter`'s copy, or the original for None / "__base__" / an adapter without a copy."""
        return self.copies[adapter] if adapter in self.copies else self.original

    # --- forward ------------------------------------------------------------------------------------------------
    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if self.sample_adapters is not None and not self.disabled:
            return self._per_sample(x, *args, **kwargs)
        return _run(self.current, x, *args, **kwargs)

    def _per_sample(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Each sample's rows through its adapter's copy (the original for "__base__")."""
        choice = self.sample_adapters
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or not choice.fits(x.shape[0]):
            raise ValueError(f"adapters_per_sample has {len(choice)} adapter names, but the saved module gets an input "
                             f"of shape {tuple(getattr(x, 'shape', ()))}, whose first dimension should be the samples.")
        groups = list(choice.rows(x.device, x.shape[0]).items())
        out = None
        for name, rows in groups:
            part = _run(self.module_for(None if name == NO_ADAPTER else name), x[rows], *args, **kwargs)
            if len(groups) == 1:
                return part
            if out is None:
                out = part.new_empty((x.shape[0], *part.shape[1:]))
            out[rows] = part
        return out

    # --- attributes of the module it stands for ----------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        """What code around the model reads of the module (a head's `in_features`, `weight`...): the current one's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or name in OWN:
                raise
            return getattr(self.current, name)

    def _apply(self, fn, recurse: bool = True):
        """`.to()`, `.half()`...: the original follows; the copies follow device moves and casts to fp32 / fp64 but
        stay fp32 under fp16 / bf16 casts (trained weights are never rounded through half precision)."""
        if not moved_keeping_fp32(fn, recurse, self.original, self.copies):
            return super()._apply(fn, recurse)
        return super()._apply(fn, recurse=False)

    def extra_repr(self) -> str:
        return f"active={self.active!r}, copies={list(self.copies)}"


def _run(module: nn.Module, x: Any, *args: Any, **kwargs: Any) -> Any:
    """`module(x, ...)`, in the module's dtype when an fp32 copy gets half-precision input without autocast (the
    output back in the input's dtype)."""
    weight = next(module.parameters(), None)
    if (isinstance(x, torch.Tensor) and weight is not None and x.is_floating_point() and x.dtype != weight.dtype
            and not torch.is_autocast_enabled(x.device.type)):
        return module(x.to(weight.dtype), *args, **kwargs).to(x.dtype)
    return module(x, *args, **kwargs)


# --- state-dict hooks (module functions, so that a patched model pickles) ------------------------------------------
def _used_prefix(module: SavedModule, prefix: str) -> str:
    return prefix + ("original." if module.active is None else f"copies.{module.active}.")


def _state_dict_under_original_names(module: SavedModule, state_dict: dict[str, Any], prefix: str,
                                     local_metadata: dict) -> None:
    """`head.copies.<active>.weight` -> `head.weight`; other copies -> `head.neat_saved.<adapter>.weight`; the
    original (when a copy stands in its names) -> `head.neat_saved.__base__.weight`; in place, in order."""
    used = _used_prefix(module, prefix)
    own = [k for k in state_dict if k.startswith(prefix)]
    entries = [(k, state_dict.pop(k)) for k in own]
    for key, value in entries:
        if key.startswith(used):
            state_dict[prefix + key[len(used):]] = value
        elif key.startswith(prefix + "original."):
            state_dict[prefix + SAVED + NO_ADAPTER + "." + key[len(prefix + "original."):]] = value
        elif key.startswith(prefix + "copies."):
            adapter, _, rest = key[len(prefix + "copies."):].partition(".")
            state_dict[prefix + SAVED + adapter + "." + rest] = value
        else:
            state_dict[key] = value


def _load_from_original_names(module: SavedModule, state_dict: dict[str, Any], prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
    """Before loading: `neat_saved.<adapter>` -> that copy, `neat_saved.__base__` -> the original, the module's own
    names -> the module the forward uses, and, when the dict is a plain checkpoint (no `neat_saved` keys: a
    fine-tuned base, a run to resume), also -> the original (so the base and the adapter in use both start from
    it, as with one shared module); what the dict lacks of the other copies keeps its values. The inner names
    (`original.`, `copies.<adapter>.`) load as they are."""
    inner = (prefix + "original.", prefix + "copies.")
    plain = not any(k.startswith(prefix + SAVED) for k in state_dict)
    used = _owner_prefix(module, state_dict, prefix)
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if key.startswith(inner):
            continue
        if rest.startswith(SAVED):
            adapter, _, name = rest[len(SAVED):].partition(".")
            target = prefix + ("original." if adapter == NO_ADAPTER else f"copies.{adapter}.") + name
        else:
            target = used + rest
            if plain and used != prefix + "original.":
                state_dict[prefix + "original." + rest] = state_dict[key]
        state_dict[target] = state_dict.pop(key)
    for name, tensor in _inner_tensors(module).items():   # what the dict lacks of the other copies keeps its value
        if prefix + name not in state_dict and not (prefix + name).startswith(used):
            state_dict[prefix + name] = tensor


def _owner_prefix(module: SavedModule, state_dict: dict[str, Any], prefix: str) -> str:
    """Where the dict's own-name entries load: the one module (a copy, or the original) the dict does not also
    hold under `neat_saved.` — the one in use when it was saved, whichever adapter is active here; the module in
    use here for a plain checkpoint, or when the dict leaves that open (saved with other adapters than these)."""
    stored = {k[len(prefix + SAVED):].partition(".")[0] for k in state_dict if k.startswith(prefix + SAVED)}
    if stored:
        owners = [name for name in [*module.copies, NO_ADAPTER] if name not in stored]
        if len(owners) == 1:
            return prefix + ("original." if owners[0] == NO_ADAPTER else f"copies.{owners[0]}.")
    return _used_prefix(module, prefix)


def _inner_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers under their inner names (what state_dict gives before its hooks)."""
    found = {}
    for path, sub in module.named_modules():
        dotted = path + "." if path else ""
        found.update({dotted + n: p for n, p in sub._parameters.items() if p is not None})
        found.update({dotted + n: b for n, b in sub._buffers.items()
                      if b is not None and n not in sub._non_persistent_buffers_set})
    return found
