"""Putting NEAT on a model: target matching, module replacement, trainable-parameter control, merging."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .config import NeatConfig
from .layer import NO_ADAPTER, NeatLinear, SampleAdapters, SliceSpec, adapter_name_error, is_adaptable, layer_features
from .saved_modules import SavedModule
from .slices import network_width

_REGEX_CHARS = set("^$*+?[](){}|\\")
CONFIGS_ATTR = "neat_configs"  # model attribute: {adapter name: NeatConfig}
ACTIVE_ATTR = "neat_active_adapter"
# A transformers-like `model.config` carries the same two, as JSON ({name: NeatConfig dict}, active name), so that
# save_pretrained's config.json says which adapters its model.safetensors holds (neat_text.from_pretrained reads it).
# state-dict keys of NEAT networks (<layer>.neat.<adapter>.<param>) and of the saved modules' other copies
# (<module>.neat_saved.<adapter>.<param>)
ADAPTER_KEY = re.compile(r"(^|\.)neat(_saved)?\.")


# --- matching --------------------------------------------------------------------------------------
def name_matches(pattern: str, name: str) -> bool:
    """A plain pattern matches the name or a dotted suffix of it; a regex must match the whole name."""
    if _REGEX_CHARS & set(pattern):
        return re.fullmatch(pattern, name) is not None
    return name == pattern or name.endswith("." + pattern)


def block_index(name: str, layers_pattern: str | None) -> int | None:
    """The block a module sits in: the integer after `layers_pattern`, else the first integer in the name."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit() and (layers_pattern is None or (i > 0 and parts[i - 1] == layers_pattern)):
            return int(part)
    return None


def plain_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The model's modules by name (the root as ""), a NEAT layer or a saved module as one module: their insides are
    left out, so the names are those of the model without NEAT (what PEFT and a plain checkpoint see)."""
    found, inside = {}, []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        found[name] = module
        if isinstance(module, (NeatLinear, SavedModule)):
            inside.append(name)
    return found


def _adaptable(model: nn.Module) -> dict[str, nn.Module]:
    """Modules NEAT can wrap (or has wrapped), by name."""
    return {n: m for n, m in plain_modules(model).items() if isinstance(m, NeatLinear) or is_adaptable(m)}


def _no_match_error(model: nn.Module, pattern: str, adaptable: dict[str, nn.Module]) -> ValueError:
    sample = list(adaptable)[:8] or [n for n, _ in model.named_modules() if n][:8]
    return ValueError(
        f"NEAT target {pattern!r} matches no linear layer of {type(model).__name__}. Linear layers here are "
        f"named like: {', '.join(sample) or '(none)'}. Pass targets= with names, dotted suffixes "
        f"(e.g. 'attn.qkv') or a regex of these.")


def plan_injection(model: nn.Module, config: NeatConfig) -> dict[str, SliceSpec]:
    """Which modules `config` adapts and how: {module name: SliceSpec}. Reads the model, changes nothing."""
    if not config.targets:
        raise ValueError("NeatConfig.targets is empty: name the layers to adapt (e.g. targets=['attn.qkv']), "
                         "or use a front end's preset (neat_vision.patch / neat_text.patch).")
    adaptable = _adaptable(model)
    whole = _trained_whole(model, config)
    chosen: list[str] = []
    for pattern in config.targets:
        hits = [n for n in [*adaptable, *whole] if name_matches(pattern, n)]
        if not hits:
            raise _no_match_error(model, pattern, adaptable)
        chosen += [n for n in hits if n not in chosen]
    chosen = [n for n in chosen if not any(name_matches(p, n) for p in config.exclude)]
    if config.layers is not None:
        chosen = [n for n in chosen if block_index(n, config.layers_pattern) in config.layers]
    if not chosen:
        raise ValueError(f"NEAT targets {config.targets} matched layers, but none is left after exclude="
                         f"{config.exclude} and layers={config.layers}; widen the selection.")
    _check_no_overlap(model, chosen, whole)
    plan = {}
    for name in chosen:
        spec = SliceSpec()
        for pattern, sl in config.slices.items():
            if name_matches(pattern, name):
                spec = SliceSpec(sl["num_blocks"], tuple(sl["blocks"]))
        features, out = layer_features(adaptable[name])
        if out % spec.num_blocks:
            raise ValueError(f"{name} has out_features={out}, which does not split into "
                             f"{spec.num_blocks} equal blocks as slices asks.")
        width = network_width(features, out, config.orientation, spec)
        if config.rank > width:
            raise ValueError(f"NeatConfig.rank={config.rank} is larger than {name}'s width {width} (the weight network "
                             f"reads its {'rows of W^T' if config.orientation == 'out' else 'rows of W'}, "
                             f"{width} wide): use rank <= {width}, or leave this layer out (exclude=[...]).")
        plan[name] = spec
    for name in config.modules_to_save:
        saved_parameters(model, name)  # raises for a name that is neither a module nor a parameter
    return plan


def _trained_whole(model: nn.Module, config: NeatConfig) -> dict[str, str]:
    """{layer NEAT could adapt: the module trained whole (modules_to_save) that it is or lies in}, for `config`'s
    entries and the saved modules already on the model."""
    found = {}
    for saved in dict.fromkeys([*_saved_module_names(model, config), *(n for n, _ in saved_modules(model))]):
        module = model.get_submodule(saved)   # (a bare parameter is no module: nothing lies in it)
        module = module.original if isinstance(module, SavedModule) else module
        for sub, child in module.named_modules():
            if isinstance(child, NeatLinear) or is_adaptable(child):
                found[f"{saved}.{sub}" if sub else saved] = saved
    return found


def _check_no_overlap(model: nn.Module, chosen: list[str], whole: dict[str, str]) -> None:
    """A module an adapter trains whole (one copy per adapter) neither holds nor lies inside a NEAT layer."""
    held = [n for n, _ in neat_layers(model)]
    pairs = [(whole[n], n) for n in [*chosen, *held] if n in whole]
    pairs += [(saved, n) for saved in whole.values() for n in held if saved.startswith(n + ".")]
    if pairs:
        saved, name = pairs[0]
        raise ValueError(
            f"modules_to_save entry {saved!r} overlaps the NEAT layer {name!r}: a module an adapter trains whole "
            f"cannot also hold or be inside a NEAT layer. Leave {name!r} out of targets (exclude=[{name!r}]) or "
            f"{saved!r} out of modules_to_save.")


def saved_parameters(model: nn.Module, name: str, adapter: str | None = None) -> dict[str, nn.Parameter]:
    """The parameters (by their plain full names, `head.weight`) that modules_to_save entry `name` stands for: a
    module's (of a saved module, `adapter`'s copy: default the one in use), or one parameter."""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        try:
            return {name: model.get_parameter(name)}
        except AttributeError:
            raise ValueError(f"modules_to_save names {name!r}, which is neither a module nor a parameter of "
                             f"{type(model).__name__}.") from None
    if isinstance(module, SavedModule):
        module = module.current if adapter is None else module.module_for(adapter)
    return {f"{name}.{p}": param for p, param in module.named_parameters()}


def saved_modules(model: nn.Module) -> Iterator[tuple[str, SavedModule]]:
    for name, module in model.named_modules():
        if isinstance(module, SavedModule):
            yield name, module


def _saved_module_names(model: nn.Module, config: NeatConfig) -> list[str]:
    """The modules_to_save entries that name modules (each gets a copy per adapter; a bare parameter stays shared)."""
    found = []
    for name in config.modules_to_save:
        try:
            model.get_submodule(name)
        except AttributeError:
            continue
        found.append(name)
    return found


# --- the model's NEAT state ---------------------------------------------------------------------------
def neat_layers(model: nn.Module) -> Iterator[tuple[str, NeatLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, NeatLinear):
            yield name, module


def adapter_configs(model: nn.Module) -> dict[str, NeatConfig]:
    """{adapter name: NeatConfig} of the adapters on `model` (empty when none)."""
    return getattr(model, CONFIGS_ATTR, {})


def active_adapter(model: nn.Module) -> str | None:
    return getattr(model, ACTIVE_ATTR, None)


def transformers_config(model: nn.Module) -> Any | None:
    """`model.config` when it is a transformers-like config (saved as config.json by save_pretrained), else None."""
    config = getattr(model, "config", None)
    return config if all(hasattr(config, a) for a in ("model_type", "to_dict", "save_pretrained")) else None


def record_adapters_on_config(model: nn.Module) -> None:
    """Keep a transformers-like `model.config` in step with the model's adapters (removed when there are none)."""
    config = transformers_config(model)
    if config is None:
        return
    configs = adapter_configs(model)
    if configs:
        setattr(config, CONFIGS_ATTR, {name: c.to_dict() for name, c in configs.items()})
        setattr(config, ACTIVE_ATTR, active_adapter(model))
    else:
        for attr in (CONFIGS_ATTR, ACTIVE_ATTR):
            if hasattr(config, attr):
                delattr(config, attr)


def adapter_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the model's NEAT networks (every adapter) and of its saved modules' other copies."""
    return {key for key in model.state_dict() if ADAPTER_KEY.search(key)}


def base_state_dict(model_or_state_dict: nn.Module | Mapping[str, Any]) -> dict[str, Any]:
    """The state dict without the NEAT networks: what the plain (unpatched) model loads with strict=True.

    A patched model's state dict already holds its base weights under the plain model's names (the original
    weights when merged); this drops the `<layer>.neat.<adapter>.<param>` entries."""
    state = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    return {k: v for k, v in state.items() if ADAPTER_KEY.search(k) is None}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def inject(model: nn.Module, config: NeatConfig, adapter: str = "default", *, compute_scales: bool = True
           ) -> nn.Module:
    """Add adapter `adapter` to every module `config` targets, make it the active one, and freeze everything
    else except `config.modules_to_save`. Returns the same model object.

    With scale="auto" each layer's per-slice scales are computed from its frozen weight here; `compute_scales=False`
    leaves them unset (NaN) for a loader that fills them from a saved adapter (load_adapter, from_peft do)."""
    if not isinstance(config, NeatConfig):
        raise TypeError(f"inject expects a NeatConfig, got {type(config).__name__}.")
    error = adapter_name_error(adapter)
    if error is not None:
        raise error
    configs = adapter_configs(model)
    if adapter in configs:
        raise ValueError(f"Adapter {adapter!r} already exists on this model; choose another name or call "
                         f"neat_core.delete_adapter(model, {adapter!r}) first.")
    if any(layer.merged_adapter for _, layer in neat_layers(model)):
        raise ValueError("The model has a merged adapter; call neat_core.unmerge(model) before adding another.")
    plan = plan_injection(model, config)
    added: list[tuple[str, NeatLinear, bool]] = []   # (name, layer, wrapped here)
    try:
        for name, spec in plan.items():
            layer = model.get_submodule(name)
            wrapped = not isinstance(layer, NeatLinear)
            if wrapped:
                layer = NeatLinear(layer)
                _replace(model, name, layer)
            added.append((name, layer, wrapped))
            layer.add_adapter(adapter, config, spec, compute_scales=compute_scales)
    except ValueError as err:   # a layer refused the adapter (scale="auto" on a zero weight): undo, then say where
        for done, layer, wrapped in added:
            if adapter in layer.neat:
                layer.delete_adapter(adapter)
            if wrapped:
                _replace(model, done, layer.base_layer)
        raise ValueError(f"{added[-1][0]}: {err}") from None
    for name in _saved_module_names(model, config):   # the adapter's own copy of each module it trains whole
        module = model.get_submodule(name)
        if not isinstance(module, SavedModule):
            module = SavedModule(module)
            _replace(model, name, module)
        module.add(adapter)
    route_through_neat_layers(model)
    setattr(model, CONFIGS_ATTR, {**configs, adapter: config})
    set_adapter(model, adapter)
    return model


# Modules that can bypass a child projection by reading its weight (F.linear(x, self.qkv.weight, ...)) unless a
# boolean switch makes them call the child: {switch attribute: child attribute}. timm's Eva and SwinV2 attention
# with q/v biases do this; `qkv_bias_separate=True` calls the qkv module and adds the bias after (same maths).
# Duck-typed, so neat_core imports no timm, and set by every injection (patch, load_adapter, from_pretrained).
BYPASS_SWITCHES = {"qkv_bias_separate": "qkv"}


def route_through_neat_layers(model: nn.Module) -> None:
    """Set every bypass switch (BYPASS_SWITCHES) of a module whose child is a NEAT layer, so that the adapter is in
    the forward."""
    for module in model.modules():
        for switch, child in BYPASS_SWITCHES.items():
            if isinstance(getattr(module, child, None), NeatLinear) and isinstance(getattr(module, switch, None), bool):
                setattr(module, switch, True)


def set_adapter(model: nn.Module, adapter: str) -> None:
    """Use and train only `adapter`; the base and every other adapter are frozen."""
    configs = adapter_configs(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r}; this model has {sorted(configs) or 'none'}.")
    if any(layer.merged_adapter for _, layer in neat_layers(model)):
        raise ValueError("An adapter is merged; call neat_core.unmerge(model) before switching adapters.")
    model.requires_grad_(False)
    for _, layer in neat_layers(model):
        layer.set_adapter(adapter if adapter in layer.neat else None)
    for _, module in saved_modules(model):
        module.set_active(adapter)
    for name in configs[adapter].modules_to_save:
        for param in saved_parameters(model, name).values():
            param.requires_grad_(True)
    setattr(model, ACTIVE_ATTR, adapter)
    record_adapters_on_config(model)


def delete_adapter(model: nn.Module, adapter: str) -> None:
    """Remove `adapter` from every layer; another remaining adapter (if any) becomes active."""
    configs = adapter_configs(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r}; this model has {sorted(configs) or 'none'}.")
    layers = [layer for _, layer in neat_layers(model) if adapter in layer.neat]
    if any(layer.merged_adapter == adapter for layer in layers):
        raise ValueError(f"Adapter {adapter!r} is merged; call neat_core.unmerge(model) before deleting it.")
    for layer in layers:
        layer.delete_adapter(adapter)
    for name, module in list(saved_modules(model)):
        if adapter in module.copies:
            module.remove(adapter)
        if not module.copies:   # no adapter trains it any more: the model's own module again
            _replace(model, name, module.original)
    remaining = {k: v for k, v in configs.items() if k != adapter}
    setattr(model, CONFIGS_ATTR, remaining)
    if active_adapter(model) == adapter:
        setattr(model, ACTIVE_ATTR, None)
        if remaining:
            set_adapter(model, next(iter(remaining)))
    record_adapters_on_config(model)


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters that will receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def print_trainable_parameters(model: nn.Module) -> None:
    """Print trainable and all parameters and the trainable share, in the line PEFT's
    `PeftModel.print_trainable_parameters` prints (all parameters count every adapter and every head copy)."""
    trainable, total = trainable_parameters(model), sum(p.numel() for p in model.parameters())
    share = 100 * trainable / total if total else 0.0
    print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {share:.4f}")


@contextlib.contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every NEAT layer computes its base layer's output (merged or not) and every saved module its
    original (the model as it was before any adapter)."""
    layers = [layer for _, layer in neat_layers(model)] + [module for _, module in saved_modules(model)]
    previous = [layer.disabled for layer in layers]
    for layer in layers:
        layer.disabled = True
    try:
        yield model
    finally:
        for layer, flag in zip(layers, previous):
            layer.disabled = flag


@contextlib.contextmanager
def adapters_per_sample(model: nn.Module, adapters: Sequence[str]) -> Iterator[nn.Module]:
    """Inside the block, sample i of every batch uses adapter `adapters[i]` (`"__base__"`: the base model alone),
    whatever the active adapter; for inference (`model.eval()`, or no grad), on unmerged adapters.

    Works for any model, timm or transformers (`model(x)`, `model(**inputs)`, `model.generate(...)`, beam search and
    num_return_sequences included): each NEAT layer runs its base once for the whole batch (its input's first
    dimension must be the samples, or k rows per sample kept together as generate expands them) and adds each
    adapter's update to that adapter's samples. A layer without a sample's adapter gives that sample the base. A
    module the adapters train whole (a head in `modules_to_save`) runs each sample's rows through its adapter's copy.
    """
    if (isinstance(adapters, str) or not isinstance(adapters, Sequence) or not adapters
            or not all(isinstance(a, str) for a in adapters)):
        raise ValueError(f"adapters_per_sample takes a list with one adapter name per sample (e.g. ['a', 'b', "
                         f"'{NO_ADAPTER}']), got {adapters!r}.")
    known = adapter_configs(model)
    unknown = sorted(set(adapters) - set(known) - {NO_ADAPTER})
    if unknown:
        raise ValueError(f"Unknown adapter name(s) in adapters_per_sample: {', '.join(map(repr, unknown))}; this model "
                         f"has {', '.join(map(repr, sorted(known))) or 'no adapters'} (and {NO_ADAPTER!r} for the "
                         "base model alone).")
    layers = list(neat_layers(model))
    merged = sorted({layer.merged_adapter for _, layer in layers if layer.merged_adapter is not None})
    if merged:
        raise ValueError(f"adapters_per_sample needs unmerged adapters, but {', '.join(map(repr, merged))} is "
                         "merged; call neat_core.unmerge(model) first.")
    choice = SampleAdapters(tuple(adapters))
    heads = [module for _, module in saved_modules(model)]
    previous = [layer.sample_adapters for _, layer in layers]  # an enclosing block's choice
    previous_heads = [module.sample_adapters for module in heads]
    for name, layer in layers:
        layer.set_sample_adapters(choice, name)
    for module in heads:
        module.sample_adapters = choice
    try:
        yield model
    finally:
        for (name, layer), before in zip(layers, previous):
            layer.set_sample_adapters(before, name)
        for module, before in zip(heads, previous_heads):
            module.sample_adapters = before


# --- merging ------------------------------------------------------------------------------------
def merge(model: nn.Module, safe_merge: bool = False) -> None:
    """Write the active adapter into the base weights (inference then costs nothing extra).

    With safe_merge=True every merged weight is computed and checked first; if one is not finite a
    ValueError names the layer and no weight is changed. Merging an already merged model warns and does nothing.
    """
    layers = [(n, layer) for n, layer in neat_layers(model) if layer.active_adapter is not None]
    if not layers:
        raise ValueError(f"This {type(model).__name__} has no active NEAT adapter to merge: patch it "
                         "(neat_vision.patch / neat_text.patch), load one (neat_core.load_adapter) or choose one "
                         "(neat_core.set_adapter) first.")
    if any(layer.merged_adapter is not None for _, layer in layers):
        warnings.warn("The NEAT adapter is already merged; merge() did nothing.", UserWarning, stacklevel=2)
        return
    if safe_merge:
        new = [(layer, layer.merged_weight()) for _, layer in layers]
        for (name, layer), (_, weight) in zip(layers, new):
            if not torch.isfinite(weight).all():
                raise ValueError(f"Merging adapter {layer.active_adapter!r} gives non-finite weights in {name}; "
                                 "the adapter is broken (NaN/inf). Nothing was merged.")
        for layer, weight in new:
            layer.commit_merge(weight)
        return
    for _, layer in layers:
        layer.commit_merge(layer.merged_weight())


def unmerge(model: nn.Module) -> None:
    """Restore the base weights exactly as they were before `merge`."""
    for _, layer in neat_layers(model):
        layer.unmerge()


def merge_and_unload(model: nn.Module, safe_merge: bool = False) -> nn.Module:
    """Merge the active adapter and put the plain base modules (`nn.Linear`, `Conv1D`) back; the model no
    longer has NEAT state."""
    if not any(layer.merged_adapter for _, layer in neat_layers(model)):
        merge(model, safe_merge=safe_merge)
    for name, layer in list(neat_layers(model)):
        layer.base_layer.weight.requires_grad_(False)
        _replace(model, name, layer.base_layer)
    for name, module in list(saved_modules(model)):   # the active adapter's copy becomes the model's module
        _replace(model, name, module.current)
    for attr in (CONFIGS_ATTR, ACTIVE_ATTR):
        if hasattr(model, attr):
            delattr(model, attr)
    record_adapters_on_config(model)
    return model
