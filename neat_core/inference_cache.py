"""NeatLinear's inference cache (a mixin): what the forward of an adapter needs -- the factors, or W + dW on the
materialized path -- computed once and kept per adapter name while no autograd graph of it is needed and nothing is
being compiled or traced.

The key is (path, compute dtype, the adapter's settings, and for the base weight and every adapter parameter and
buffer: the same tensor object, storage, version counter, dtype, device). In-place updates (optimizer steps,
`load_state_dict`, `load_adapter`, merge / unmerge) bump version counters and `.to()` moves storage, so no stale
factor is ever used. Writes through `tensor.data` bypass version counters, as they bypass autograd: call
`clear_cache()` after such writes.
"""

from __future__ import annotations

import torch


def _fingerprint(tensors: tuple[torch.Tensor, ...]) -> tuple | None:
    """What tells whether `tensors` still hold the same values, without reading them: storage address, version
    counter, dtype and device of each; None for inference tensors (they have no version counter)."""
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)




class InferenceCache:
    """The cache of a NeatLinear (the layer's `neat`, `settings`, `base_layer`, `uses_materialized`, `_factors`,
    `updated_weight`, `scale_factor`, `_compute_weight` and `_compute_dtype` are its own)."""

    _inference_cache: dict

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
