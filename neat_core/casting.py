"""dtypes and devices of a NeatLinear (a mixin): adapters stay fp32 on a half-precision base and under casts to
fp16 / bf16 (never rounded through half precision), follow device moves and casts to fp32 / fp64; the products run
in autocast's dtype, else the input's, with a cast copy of the frozen weight kept while the weight is unchanged.
"""

from __future__ import annotations

import functools

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def adapter_dtype(weight_dtype: torch.dtype) -> torch.dtype:
    """Adapter parameters stay fp32 on a half-precision base; otherwise they follow the base."""
    return torch.float32 if weight_dtype in HALF_DTYPES else weight_dtype




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


def moved_keeping_fp32(fn, recurse: bool, follows: torch.nn.Module, kept: torch.nn.Module) -> bool:
    """`Module._apply(fn)` for a module whose `follows` part takes every cast and whose `kept` part (trained weights)
    stays fp32 under a cast to fp16 / bf16: applies both and returns True for such a cast; False (nothing done) for
    any other, which the module then applies as usual."""
    target = _cast_target(fn, next(follows.parameters(), torch.empty(0)))
    if not recurse or target is None or target.dtype not in HALF_DTYPES:
        return False
    kept._apply(functools.partial(_move_keeping_fp32, fn))
    follows._apply(fn)
    return True


class Casting:
    """A NeatLinear's compute dtype and its `.to()` / `.half()` / `.cuda()` (the layer's `base_layer`, `neat` and
    caches are its own)."""

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

    def _apply(self, fn, recurse: bool = True):
        """`.to()`, `.half()`, `.cuda()`...: the base follows; the adapters follow device moves and casts to fp32 or
        fp64, but stay fp32 when the target is fp16/bf16 (they are never rounded through half precision)."""
        self._cast_weight = self._cast_key = None
        self.clear_cache()
        if not moved_keeping_fp32(fn, recurse, self.base_layer, self.neat):
            return super()._apply(fn, recurse)
        return super()._apply(fn, recurse=False)
