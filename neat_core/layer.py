"""`NeatLinear`: a frozen linear layer plus NEAT weight networks (one per named adapter).

For one adapted weight slice W_s (D x in, torch layout) the network gives two factors

    orientation "out":  H = f(W_s^T) (in x r)      P = H,       Q = B      (r x D)
    orientation "in":   H = f(W_s)   (D x r)       P = B^T,     Q = H^T
    dW_s^T = s * P Q   (in x D),      y_s = x W_s^T + b_s + s * (x P) Q

so the forward never needs dW itself (the "factored" path). The "materialized" path builds
W + dW once and runs one `F.linear`. Rule used by compute="auto" (`uses_materialized`): factored whenever
autograd is recording (training: the materialized path would need a full out x in weight gradient) or the
factors can be cached (see below: the forward then costs LoRA's two skinny products); otherwise (inside
torch.compile at inference) materialized when the tokens in the batch make the two skinny products dearer
than building dW, i.e. when tokens * (in + S*D) > in * S*D.

Inference cache: when the factors need no autograd graph (grad mode off, or nothing they are computed from
requires grad) and the forward is not being compiled or traced, what the chosen path needs of an adapter -- the factors,
or W + dW on the materialized path -- is computed once and kept per adapter name, until the base weight, one of
the adapter's parameters (object, storage, version counter, dtype, device), the adapter's settings or the
compute dtype change. In-place updates (optimizer steps, `load_state_dict`, `load_adapter`, merge / unmerge)
bump version counters; `.to()` moves storage; so no stale factor is ever used. Writes through `tensor.data`
bypass version counters, as they bypass autograd: call `clear_cache()` after such writes.

Several adapters in one batch (`neat_core.adapters_per_sample`): with a `SampleAdapters` choice set, the base
runs once for the whole batch (first dimension = samples) and each adapter's update is added to its samples'
rows; "__base__" (PEFT's name) leaves a sample's rows to the base.

Besides `nn.Linear`, NeatLinear wraps Hugging Face's `Conv1D` (GPT-2's c_attn, c_proj, ...), recognised by
duck typing (class name "Conv1D" with `nf`/`nx` attributes) so that neat_core never imports transformers. Its
weight is stored in x out ("fan_in_fan_out"); NeatLinear does all maths in torch layout and writes merges back
in the stored layout.

State dicts (docs/ARCHITECTURE.md, "State dicts and checkpoints"): through hooks, a NeatLinear writes its base
tensors under the wrapped layer's own names (`qkv.weight`, not `qkv.base_layer.weight`) and, when merged, the
original weight rather than the merged one; adapters go under `qkv.neat.<adapter>.<param>`. Loading accepts the
original and the older `base_layer.` names, leaves the adapters as they are when the incoming dict has none for
this layer (a plain checkpoint), and re-merges a merged layer with the loaded base and adapter.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import AUTO_SCALE, NeatConfig
from .network import NeatNetwork


@dataclass(frozen=True)
class SliceSpec:
    """Which equal row blocks of a fused projection are adapted (None: the whole weight)."""

    num_blocks: int = 1
    blocks: tuple[int, ...] = (0,)

    @property
    def whole(self) -> bool:
        return self.num_blocks == 1

    @property
    def index(self) -> slice | list[int]:
        """The adapted blocks as a slice when evenly spaced (a view, no copy), else as a list."""
        b = self.blocks
        step = b[1] - b[0] if len(b) > 1 else 1
        if step > 0 and all(b2 - b1 == step for b1, b2 in zip(b, b[1:])):
            return slice(b[0], b[-1] + 1, step)
        return list(b)


@dataclass(frozen=True)
class AdapterSettings:
    scale: float | str   # a number, or "auto": the per-slice values live in the network (NeatLinear.scale_factor)
    orientation: str
    compute: str
    slices: SliceSpec


HALF_DTYPES = (torch.float16, torch.bfloat16)
BASE = "base_layer."
ADAPTERS = "neat."
NO_ADAPTER = "__base__"  # a sample's adapter name meaning "the base layer alone" (PEFT's adapter_names name)
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


class SampleAdapters:
    """A per-sample adapter choice for one batch: `names[i]` for sample i (NO_ADAPTER: the base alone)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        rows: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            rows.setdefault(name, []).append(i)
        # contiguous groups as slices (views, no copies); others as index lists
        self._rows = {name: slice(r[0], r[-1] + 1) if r[-1] - r[0] + 1 == len(r) else r for name, r in rows.items()}
        self._on_device: dict[torch.device, dict[str, slice | torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def rows(self, device: torch.device) -> dict[str, slice | torch.Tensor]:
        """{adapter name: the rows of its samples}, index tensors made once per device."""
        found = self._on_device.get(device)
        if found is None:
            found = {name: r if isinstance(r, slice) else torch.tensor(r, device=device)
                     for name, r in self._rows.items()}
            self._on_device[device] = found
        return found


def adapter_dtype(weight_dtype: torch.dtype) -> torch.dtype:
    """Adapter parameters stay fp32 on a half-precision base; otherwise they follow the base."""
    return torch.float32 if weight_dtype in HALF_DTYPES else weight_dtype


def _fingerprint(tensors: tuple[torch.Tensor, ...]) -> tuple | None:
    """What tells whether `tensors` still hold the same values, without reading them: storage address, version
    counter, dtype and device of each; None for inference tensors (they have no version counter)."""
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


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


def network_shapes(in_features: int, out_features: int, config: NeatConfig,
                   slices: SliceSpec) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the network NeatLinear would build (no allocation), keyed like its state dict: the
    parameters, and `scales` (one per slice) for scale="auto"."""
    num, rank = len(slices.blocks), config.rank
    dim = out_features // slices.num_blocks if config.orientation == "out" else in_features
    shapes = {"A": (num, dim, rank)}
    for i in range((config.depth - 2) // 2):
        shapes[f"encoders.{i}"] = (num, rank, rank)
    for i in range((config.depth - 2) // 2):
        shapes[f"decoders.{i}"] = (num, rank, rank)
    shapes["B"] = (num, rank, dim)
    if config.scale == AUTO_SCALE:
        shapes["scales"] = (num,)
    return shapes


def _add_blocks(t: torch.Tensor, dim: int, slices: SliceSpec, additions: torch.Tensor) -> torch.Tensor:
    """t with additions[k] added to row block slices.blocks[k] along `dim`; other blocks are copied bit-exactly."""
    if slices.whole:
        return t + additions[0]
    dim = dim % t.dim()
    parts = list(t.unflatten(dim, (slices.num_blocks, -1)).unbind(dim))
    for k, block in enumerate(slices.blocks):
        parts[block] = parts[block] + additions[k]
    return torch.cat(parts, dim)


class NeatLinear(nn.Module):
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
        self.register_state_dict_post_hook(_state_dict_under_original_names)
        self.register_load_state_dict_pre_hook(_load_from_original_names)
        self.register_load_state_dict_post_hook(_merge_again_after_load)

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
        return _add_blocks(weight, 0, self.settings[name].slices, delta)

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

    # --- inference cache ------------------------------------------------------------------------
    def caches(self, name: str) -> bool:
        """Whether the forward keeps what adapter `name` needs between calls: only when no autograd graph of it is
        needed (grad mode off, or neither the base weight nor the adapter requires grad) and neither torch.compile
        nor torch.jit.trace is tracing (the cache stays out of their graphs: no stale constants)."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return False
        return not (torch.is_grad_enabled() and (self.base_layer.weight.requires_grad
                                                 or any(p.requires_grad for p in self.neat[name].parameters())))

    def clear_cache(self) -> None:
        """Drop the cached factors (needed only after writes through `tensor.data`, which no version counter sees)."""
        self._inference_cache = {}

    def _path_tensors(self, x: torch.Tensor, name: str) -> tuple[bool, tuple[torch.Tensor, ...]]:
        """(materialized, what that path needs in the compute dtype): (W + dW,), or (down (S*r, in), up (S*r, S*D))
        for the factored x down^T up. Taken from the cache while its key still holds."""
        materialized = self.uses_materialized(x, name)
        if not self.caches(name):
            return materialized, self._build_path(name, self._compute_weight(x), materialized)
        sources = (self.base_layer.weight, *self.neat[name].parameters(), *self.neat[name].buffers())  # scales too
        fingerprint = _fingerprint(sources)
        key = (materialized, self._compute_dtype(x), self.settings[name], fingerprint)
        entry = self._inference_cache.get(name)
        if (fingerprint is not None and entry is not None and entry[0] == key
                and all(a is b for a, b in zip(entry[1], sources))):
            return materialized, entry[2]
        with torch.inference_mode(False), torch.no_grad():  # plain tensors without a graph, usable in any mode
            built = self._build_path(name, self._compute_weight(x), materialized)
        if fingerprint is not None:
            self._inference_cache[name] = (key, sources, built)
        return materialized, built

    def _build_path(self, name: str, weight: torch.Tensor, materialized: bool) -> tuple[torch.Tensor, ...]:
        if materialized:
            return (self.updated_weight(name, weight),)
        p, q = self._factors(name, weight)
        # P laid out as F.linear's (S*r, in) weight, so that in training its gradient is grad^T @ x (the fast GEMM
        # layout), not x^T @ grad; Q of every slice on the block diagonal, so that all slices run in one product
        down = p.transpose(1, 2).reshape(-1, self.in_features).contiguous()
        return down, torch.block_diag(*(q * self.scale_factor(name, q)))

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

    def set_sample_adapters(self, choice: SampleAdapters | None, where: str = "") -> None:
        """Use `choice` (one adapter name per sample) in the forward, None to stop; `where`: this layer's name."""
        self.sample_adapters, self._where = choice, where

    def _per_sample_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The base once for the whole batch, then each adapter's update on its samples' rows."""
        choice = self.sample_adapters
        if self.merged_adapter is not None:
            raise ValueError(f"adapters_per_sample needs unmerged adapters, but adapter {self.merged_adapter!r} is "
                             f"merged into NEAT layer {self._where}; call neat_core.unmerge(model) first.")
        if self.training and torch.is_grad_enabled():
            raise ValueError(f"adapters_per_sample is for inference, but NEAT layer {self._where} is in training mode "
                             "with autograd on; call model.eval() or run under torch.no_grad() / "
                             "torch.inference_mode().")
        if x.dim() < 2 or x.shape[0] != len(choice):
            raise ValueError(f"adapters_per_sample has {len(choice)} adapter names, but NEAT layer {self._where} gets "
                             f"an input of shape {tuple(x.shape)}, whose first dimension should be the {len(choice)} "
                             "samples. Give one name per sample of the batch; models that fold more into the first "
                             "dimension (Swin's attention windows, beam search) are not supported.")
        if self.disabled:
            return self.base_layer(x)
        groups = [(name, rows) for name, rows in choice.rows(x.device).items() if name in self.neat]
        if len(groups) == 1 and groups[0][1] == slice(0, len(choice)):  # one adapter for the whole batch
            return self._adapted(x, groups[0][0])
        y = self.base_layer(x)
        for name, rows in groups:
            part = y[rows]  # a view for a slice, a copy for an index tensor
            out = self._adapted(x[rows], name, part)
            if out is not part or not isinstance(rows, slice):
                y[rows] = out
        return y

    def _merged_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The merged weight's output (the original one's when disabled); refuses to train a merged adapter."""
        if self.disabled:
            return F.linear(x, self.torch_layout(self._original_weight), self.base_layer.bias)
        if self.training and torch.is_grad_enabled() and any(
                p.requires_grad for p in self.neat[self.merged_adapter].parameters()):
            raise merged_training_error(self.merged_adapter)
        return self.base_layer(x)

    def _compute_weight(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen weight in torch layout and the dtype the products run in (autocast's, else x's).

        The cast copy is kept while the weight is unchanged (same storage and version), so a frozen fp32
        weight is not re-cast to bf16 at every step; a weight that trains is cast afresh to keep its gradient.
        """
        stored = self.base_layer.weight
        dtype = self._compute_dtype(x)
        if stored.dtype == dtype:
            return self.torch_layout(stored)
        if stored.requires_grad or torch.compiler.is_compiling():
            return self.torch_layout(stored).to(dtype)
        key = (dtype, stored.data_ptr(), stored._version)
        if self._cast_key != key:
            self._cast_weight, self._cast_key = self.torch_layout(stored).detach().to(dtype), key
        return self._cast_weight

    @staticmethod
    def _compute_dtype(x: torch.Tensor) -> torch.dtype:
        device = x.device.type
        return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype

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

    # --- casting, scripting --------------------------------------------------------------------
    def _apply(self, fn, recurse: bool = True):
        """`.to()`, `.half()`, `.cuda()`...: the base follows; the adapters follow device moves and casts to fp32 or
        fp64, but stay fp32 when the target is fp16/bf16 (they are never rounded through half precision)."""
        self._cast_weight = self._cast_key = None
        self.clear_cache()
        target = _cast_target(fn, self.base_layer.weight)
        if not recurse or target is None or target.dtype not in HALF_DTYPES:
            return super()._apply(fn, recurse)
        self.neat._apply(functools.partial(_move_keeping_fp32, fn))
        self.base_layer._apply(fn)
        return super()._apply(fn, recurse=False)

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


def _cast_target(fn, like: torch.Tensor) -> torch.Tensor | None:
    """What `fn` (the function `Module._apply` maps over tensors) makes of an empty fp32 tensor on `like`'s device:
    the target dtype and device of a cast; None when it cannot be probed."""
    try:
        probe = fn(torch.empty(0, device=like.device))
    except Exception:  # noqa: BLE001 (an unusual function: let Module._apply handle it as usual)
        return None
    return probe if isinstance(probe, torch.Tensor) else None


def _move_keeping_fp32(fn, tensor: torch.Tensor) -> torch.Tensor:
    """An adapter tensor under a half-precision cast: to `fn`'s target device, in fp32."""
    device = _cast_target(fn, tensor).device
    return tensor.to(device=device, dtype=torch.float32) if tensor.is_floating_point() else tensor.to(device=device)


# --- state-dict hooks (module functions, so that a patched model pickles) -----------------------------
def _state_dict_under_original_names(layer: NeatLinear, state_dict: dict[str, Any], prefix: str,
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


def _load_from_original_names(layer: NeatLinear, state_dict: dict[str, Any], prefix: str, local_metadata: dict,
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


def _merge_again_after_load(layer: NeatLinear, incompatible_keys) -> None:
    if layer._merge_after_load:
        layer._merge_after_load = False
        layer.commit_merge(layer.merged_weight())
