"""`NeatLinear`: a frozen linear layer plus NEAT weight networks (one per named adapter): the adapters and the
forward. The rest of the layer lives beside it, one concern per module: the inference cache (inference_cache.py),
several adapters per batch (per_sample.py), dtypes and devices (casting.py), state-dict hooks (layer_state.py),
adapted slices and network shapes (slices.py).

For one adapted weight slice W_s (D x in, torch layout) the network gives two factors

    orientation "out":  H = f(W_s^T) (in x r)      P = H,       Q = B      (r x D)
    orientation "in":   H = f(W_s)   (D x r)       P = B^T,     Q = H^T
    dW_s^T = s * P Q   (in x D),      y_s = x W_s^T + b_s + s * (x P) Q

so the forward never needs dW itself (the "factored" path). The "materialized" path builds W + dW once and runs one
`F.linear`. Rule used by compute="auto" (`uses_materialized`): factored whenever autograd is recording (training:
the materialized path would need a full out x in weight gradient) or the factors can be cached (the forward then
costs LoRA's two skinny products); otherwise (inside torch.compile at inference) materialized when the tokens in
the batch make the two skinny products dearer than building dW, i.e. when tokens * (in + S*D) > in * S*D.

Besides `nn.Linear`, NeatLinear wraps Hugging Face's `Conv1D` (GPT-2's c_attn, c_proj, ...), recognised by duck
typing (class name "Conv1D" with `nf`/`nx` attributes) so that neat_core never imports transformers. Its weight is
stored in x out ("fan_in_fan_out"); NeatLinear does all maths in torch layout and writes merges back in the stored
layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import layer_state
from .casting import Casting, adapter_dtype
from .config import AUTO_SCALE, NeatConfig
from .inference_cache import InferenceCache
from .network import NeatNetwork
from .per_sample import NO_ADAPTER, PerSampleRouting, SampleAdapters
from .slices import SliceSpec, add_blocks, network_shapes

__all__ = ["NO_ADAPTER", "AdapterSettings", "NeatLinear", "SampleAdapters", "SliceSpec", "adapter_name_error",
           "is_adaptable", "is_conv1d", "layer_features", "network_shapes"]


@dataclass(frozen=True)
class AdapterSettings:
    scale: float | str   # a number, or "auto": the per-slice values live in the network (NeatLinear.scale_factor)
    orientation: str
    compute: str
    slices: SliceSpec


_RESERVED = frozenset(dir(nn.ModuleDict())) | {NO_ADAPTER}  # methods and instance attributes


def adapter_name_error(name: object) -> ValueError | None:
    """Why `name` cannot name an adapter (None when it can): adapters are keys of an `nn.ModuleDict` and parts of
    state-dict keys (`<layer>.neat.<adapter>.<param>`)."""
    if isinstance(name, str) and name and "." not in name and name not in _RESERVED:
        return None
    return ValueError(
        f"{name!r} cannot name a NEAT adapter: use a non-empty string without '.' that is not {NO_ADAPTER!r} (the "
        "base model in adapters_per_sample) and not an attribute of torch's nn.ModuleDict (such as 'keys', "
        "'items', 'values', 'update', 'pop', 'forward', 'training'); e.g. 'default', 'task_a', 'pets-r8'.")


def merged_training_error(adapter: str) -> RuntimeError:
    return RuntimeError(
        f"NEAT adapter {adapter!r} is merged into the weights, so training would not update it (its parameters "
        "get no gradient). Call neat_core.unmerge(model) to train the adapter, or neat_core.merge_and_unload(model) "
        "to train the merged weights; for inference call model.eval() or run under torch.no_grad().")


def is_conv1d(module: nn.Module) -> bool:
    """Hugging Face `Conv1D`: y = x W + b with W stored in x out (nx x nf)."""
    return (type(module).__name__ == "Conv1D" and isinstance(getattr(module, "weight", None), torch.Tensor)
            and tuple(module.weight.shape) == (getattr(module, "nx", None), getattr(module, "nf", None)))


def is_adaptable(module: nn.Module) -> bool:
    """Modules NeatLinear can wrap: `nn.Linear` and Hugging Face `Conv1D`."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def layer_features(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an adaptable module or a NeatLinear."""
    if is_conv1d(module):
        return module.nx, module.nf
    return module.in_features, module.out_features


class NeatLinear(PerSampleRouting, InferenceCache, Casting, nn.Module):
    """Wraps an `nn.Linear` or HF `Conv1D` (kept as `base_layer`, frozen) and adds NEAT networks by adapter name."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        if not is_adaptable(base_layer):
            raise TypeError(f"NeatLinear wraps nn.Linear or Hugging Face Conv1D, got {type(base_layer).__name__}.")
        self.base_layer = base_layer
        self.fan_in_fan_out = is_conv1d(base_layer)  # weight stored in x out
        self.in_features, self.out_features = layer_features(base_layer)
        self.neat = nn.ModuleDict()
        self.settings: dict[str, AdapterSettings] = {}
        self.active_adapter: str | None = None
        self.disabled = False
        self.merged_adapter: str | None = None
        self.register_buffer("_original_weight", None, persistent=False)
        self._cast_weight: torch.Tensor | None = None  # compute-dtype copy of the frozen weight
        self._cast_key: tuple | None = None
        self._merge_after_load: bool = False
        # adapter name -> (key, source tensors, what the forward needs); see the module docstring
        self._inference_cache: dict[str, tuple[tuple, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]] = {}
        self.sample_adapters: SampleAdapters | None = None  # set by neat_core.adapters_per_sample
        self._where = ""  # this layer's name in the model, for messages (set with sample_adapters)
        layer_state.register(self)

    # --- attributes code around the layer may read --------------------------------------------
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def torch_layout(self, stored: torch.Tensor) -> torch.Tensor:
        """A weight in the base layer's stored layout, seen in torch layout (out x in); also the inverse."""
        return stored.t() if self.fan_in_fan_out else stored

    # --- adapters ---------------------------------------------------------------------------
    def add_adapter(self, name: str, config: NeatConfig, slices: SliceSpec = SliceSpec(),
                    compute_scales: bool = True) -> None:
        """Add adapter `name`. With scale="auto" its per-slice scales are computed here from the frozen weight
        (`auto_scales`), unless `compute_scales` is False (a loader then fills them from a saved adapter)."""
        error = adapter_name_error(name)
        if error is not None:
            raise error
        if self.out_features % slices.num_blocks:
            raise ValueError(f"out_features={self.out_features} is not divisible into {slices.num_blocks} blocks.")
        shapes = network_shapes(self.in_features, self.out_features, config, slices)
        num, dim, rank = shapes["A"]
        weight = self.base_layer.weight
        auto = config.scale == AUTO_SCALE
        self.neat[name] = NeatNetwork(num, dim, rank, config.depth, config.activation,
                                      dtype=adapter_dtype(weight.dtype), device=weight.device, auto_scale=auto)
        self.settings[name] = AdapterSettings(AUTO_SCALE if auto else float(config.scale), config.orientation,
                                              config.compute, slices)
        if auto and compute_scales:
            try:
                scales = self.auto_scales(name)
            except ValueError:
                del self.neat[name], self.settings[name]
                raise
            self.neat[name].scales.copy_(scales)

    def delete_adapter(self, name: str) -> None:
        if self.merged_adapter == name:
            raise ValueError(f"Adapter {name!r} is merged; call neat_core.unmerge(model) before deleting it.")
        del self.neat[name]
        del self.settings[name]
        self._inference_cache.pop(name, None)
        if self.active_adapter == name:
            self.active_adapter = None

    def set_adapter(self, name: str | None) -> None:
        """Make `name` the one adapter used and trainable here (None: none)."""
        self.active_adapter = name
        for key, net in self.neat.items():
            net.requires_grad_(key == name)

    # --- maths ----------------------------------------------------------------------------------
    def auto_scales(self, name: str) -> torch.Tensor:
        """Per adapted slice, the s that makes rms(s * H) equal LoRA's rms(A) = 1 / sqrt(3 * in_features) (A
        Kaiming-uniform, a=sqrt(5), as PEFT initialises it) at the network's current parameters; H = f(W0) computed
        in fp32 (or the weight's dtype, if wider) from the unmerged weight. Shape (S,), the network's dtype."""
        with torch.no_grad():
            p, q = self._factors(name, self.reference_weight())
        hidden = p if self.settings[name].orientation == "out" else q.transpose(1, 2)
        rms = hidden.pow(2).mean(dim=(1, 2)).sqrt()
        if not hidden.is_meta and not bool(torch.isfinite(rms).all() and (rms > 0).all()):
            raise ValueError(f"scale='auto' cannot be computed for this {self.in_features}->{self.out_features} layer: "
                             f"its weight network's output at init has rms {rms.tolist()} (a zero or non-finite "
                             "weight?). Give NeatConfig.scale a number for it.")
        return (1.0 / math.sqrt(3 * self.in_features) / rms).to(self.neat[name].B.dtype)

    def scale_factor(self, name: str, like: torch.Tensor) -> float | torch.Tensor:
        """s of adapter `name`, to multiply a (S, ...) tensor like `like` slice by slice: the config's number, or
        (scale="auto") the network's stored scales shaped (S, 1, ...) in like's dtype."""
        scales = self.neat[name].scales
        if scales is None:
            return self.settings[name].scale
        return scales.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def _factors(self, name: str, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P (S, in, r) and Q (S, r, D) for torch-layout `weight` (out x in), in weight's dtype."""
        spec = self.settings[name]
        net = self.neat[name]
        rows = weight.unflatten(0, (spec.slices.num_blocks, -1))  # (blocks, D, in)
        rows = rows[spec.slices.index]
        b = net.B.to(weight.dtype)
        if spec.orientation == "out":
            return net.hidden(rows.transpose(1, 2)), b
        return b.transpose(1, 2), net.hidden(rows).transpose(1, 2)

    def updated_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """W + s * dW(W) for torch-layout `weight`, computed in weight's dtype."""
        p, q = self._factors(name, weight)
        delta = (p @ q).transpose(1, 2)  # (S, D, in)
        delta = delta * self.scale_factor(name, delta)
        return add_blocks(weight, 0, self.settings[name].slices, delta)

    def delta_weight(self, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """s * dW in torch layout (out x in), zero outside the adapted blocks."""
        weight = self._unmerged_weight().detach().to(dtype)
        return self.updated_weight(name, weight) - weight

    def uses_materialized(self, x: torch.Tensor, name: str) -> bool:
        """Whether the forward of adapter `name` on `x` runs x (W + dW)^T (else the factored x P Q); see the module
        docstring for compute="auto"."""
        compute = self.settings[name].compute
        if compute != "auto":
            return compute == "materialized"
        if torch.is_grad_enabled() or self.caches(name):
            return False
        slices = self.settings[name].slices
        out = self.out_features * len(slices.blocks) // slices.num_blocks
        tokens = x.numel() // self.in_features
        return tokens * (self.in_features + out) > self.in_features * out

    def _unmerged_weight(self) -> torch.Tensor:
        return self.torch_layout(self.base_layer.weight if self._original_weight is None else self._original_weight)

    def reference_weight(self) -> torch.Tensor:
        """The unmerged weight in torch layout, detached, in fp32 (or its own dtype if wider): what the exact
        computations read (merging, scale="auto", the LoRA export)."""
        weight = self._unmerged_weight().detach()
        return weight.to(torch.promote_types(weight.dtype, torch.float32))

    # --- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sample_adapters is not None:
            return self._per_sample_forward(x)
        if self.merged_adapter is not None:
            return self._merged_forward(x)
        name = self.active_adapter
        if self.disabled or name is None:
            return self.base_layer(x)
        return self._adapted(x, name)

    def _adapted(self, x: torch.Tensor, name: str, y: torch.Tensor | None = None) -> torch.Tensor:
        """The base layer's output for x plus adapter `name`'s update. `y`: the base output of x if computed already;
        the update is added into it in place (like into the fresh base output: autograd does not keep either)."""
        materialized, tensors = self._path_tensors(x, name)
        if materialized:
            return F.linear(x, tensors[0], self.base_layer.bias)
        down, up = tensors
        update = F.linear(x, down) @ up  # (..., S*D): one pair of skinny products for all slices
        y = self.base_layer(x) if y is None else y
        slices = self.settings[name].slices
        if slices.whole:
            return y.add_(update)
        blocks = y.unflatten(-1, (slices.num_blocks, -1))  # a view: adding into it adds into y
        parts = update.unflatten(-1, (len(slices.blocks), -1))
        index = slices.index
        if isinstance(index, slice):
            blocks[..., index, :].add_(parts)
        else:
            for k, block in enumerate(index):
                blocks[..., block, :].add_(parts[..., k, :])
        return y

    def _merged_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The merged weight's output (the original one's when disabled); refuses to train a merged adapter."""
        if self.disabled:
            return F.linear(x, self.torch_layout(self._original_weight), self.base_layer.bias)
        if self.training and torch.is_grad_enabled() and any(
                p.requires_grad for p in self.neat[self.merged_adapter].parameters()):
            raise merged_training_error(self.merged_adapter)
        return self.base_layer(x)

    # --- merge ----------------------------------------------------------------------------------
    def merged_weight(self) -> torch.Tensor:
        """The unmerged weight with the active adapter added, in the base layer's stored layout and dtype (computed
        in fp32, or the weight's dtype if wider)."""
        with torch.no_grad():
            updated = self.updated_weight(self.active_adapter, self.reference_weight())
            return self.torch_layout(updated).to(self.base_layer.weight.dtype)

    def commit_merge(self, new_weight: torch.Tensor) -> None:
        """Write a merged weight (stored layout), keeping the original so that unmerge restores it exactly."""
        weight = self.base_layer.weight
        self._original_weight = weight.detach().clone()
        with torch.no_grad():
            weight.copy_(new_weight)
        self.merged_adapter = self.active_adapter
        self.clear_cache()  # a merged layer reads no factors (and unmerging changes the weight's version)

    def unmerge(self) -> None:
        if self.merged_adapter is None:
            return
        with torch.no_grad():
            self.base_layer.weight.copy_(self._original_weight)
        self._original_weight = None
        self.merged_adapter = None

    # --- pickling, scripting -------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickles and deep copies leave the caches behind (they are rebuilt on use)."""
        return {**super().__getstate__(), **_transient()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({**_transient(), **state})  # pickles written before an attribute existed still load

    def __prepare_scriptable__(self):
        raise RuntimeError("A model with NEAT layers cannot be compiled with torch.jit.script (NeatLinear's forward "
                           "is Python: several adapters, fused slices, merged state). Use torch.jit.trace(model, "
                           "example_inputs) or torch.compile(model) instead.")

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"active_adapter={self.active_adapter!r}, merged={self.merged_adapter is not None}")


def _transient() -> dict[str, Any]:
    """What a pickle leaves out of a NeatLinear, fresh: the caches and a with-block's per-sample choice."""
    return {"_inference_cache": {}, "_cast_weight": None, "_cast_key": None, "sample_adapters": None, "_where": ""}
