"""NeatLinear's state-dict hooks (module functions, so that a patched model pickles; docs/ARCHITECTURE.md, "State
dicts and checkpoints"): a layer writes its base tensors under the wrapped layer's own names (`qkv.weight`, not
`qkv.base_layer.weight`) and, when merged, the original weight rather than the merged one; adapters go under
`qkv.neat.<adapter>.<param>`. Loading accepts the original and the older `base_layer.` names, leaves the adapters
as they are when the incoming dict has none for this layer (a plain checkpoint), and re-merges a merged layer with
the loaded base and adapter.
"""

from __future__ import annotations

from typing import Any

from torch import nn

BASE = "base_layer."
ADAPTERS = "neat."


def register(layer: nn.Module) -> None:
    """Put the three hooks on `layer`."""
    layer.register_state_dict_post_hook(state_dict_under_original_names)
    layer.register_load_state_dict_pre_hook(load_from_original_names)
    layer.register_load_state_dict_post_hook(merge_again_after_load)


def state_dict_under_original_names(layer: nn.Module, state_dict: dict[str, Any], prefix: str,
                                     local_metadata: dict) -> None:
    """`prefix + "base_layer.weight"` -> `prefix + "weight"` (the original weight when merged), in place, in order."""
    own = []  # this layer's entries: the last ones written
    for key in reversed(state_dict):
        if not key.startswith(prefix):
            break
        own.append(key)
    entries = [(key, state_dict.pop(key)) for key in reversed(own)]
    for key, value in entries:
        if key.startswith(prefix + BASE):
            key = prefix + key[len(prefix + BASE):]
            if key == prefix + "weight" and layer.merged_adapter is not None:
                value = layer._original_weight
        state_dict[key] = value


def load_from_original_names(layer: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
    """Before loading: original names -> base_layer names; no adapter keys for this layer (a plain checkpoint) ->
    the adapters keep their values; a merged layer is unmerged first (and merged again after loading)."""
    for name in layer.base_layer.state_dict(keep_vars=True):
        if prefix + name in state_dict and prefix + BASE + name not in state_dict:
            state_dict[prefix + BASE + name] = state_dict.pop(prefix + name)
    if not any(key.startswith(prefix + ADAPTERS) for key in state_dict):
        for name, tensor in layer.neat.state_dict(keep_vars=True).items():
            state_dict[prefix + ADAPTERS + name] = tensor
    if layer.merged_adapter is not None:
        layer.unmerge()
        layer._merge_after_load = True


def merge_again_after_load(layer: nn.Module, incompatible_keys) -> None:
    if layer._merge_after_load:
        layer._merge_after_load = False
        layer.commit_merge(layer.merged_weight())
