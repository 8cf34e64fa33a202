"""Several adapters in one batch (`neat_core.adapters_per_sample`): a `SampleAdapters` choice names an adapter per
sample; a NeatLinear with a choice set runs its base once for the whole batch (first dimension = samples, or k rows
per sample kept together, as `generate` expands beams) and adds each adapter's update to its samples' rows, as
PEFT's mixed-batch LoRA forward does (`peft/tuners/lora/layer.py` `_mixed_batch_forward`). "__base__" (PEFT's
name) leaves a sample's rows to the base.
"""

from __future__ import annotations

import torch

NO_ADAPTER = "__base__"  # a sample's adapter name meaning "the base layer alone" (PEFT's adapter_names name)


class SampleAdapters:
    """A per-sample adapter choice for one batch: `names[i]` for sample i (NO_ADAPTER: the base alone)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        rows: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            rows.setdefault(name, []).append(i)
        # contiguous groups as slices (views, no copies); others as index lists
        self._rows = {name: slice(r[0], r[-1] + 1) if r[-1] - r[0] + 1 == len(r) else r for name, r in rows.items()}
        self._on_device: dict[tuple, dict[str, slice | torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def rows(self, device: torch.device, batch: int | None = None) -> dict[str, slice | torch.Tensor]:
        """{adapter name: the rows of its samples} in a batch of `batch` rows (default: one per sample). A batch of
        k rows per sample holds each sample's k rows together, as `generate` lays out beams and returned sequences
        (`repeat_interleave`) and timm's Swin its windows; index tensors are made once per device and size."""
        k = (batch or len(self)) // len(self)
        key = (device, k)
        found = self._on_device.get(key)
        if found is None:
            found = {}
            for name, r in self._rows.items():
                if isinstance(r, slice):
                    found[name] = slice(r.start * k, r.stop * k)
                else:
                    found[name] = torch.tensor([i * k + j for i in r for j in range(k)], device=device)
            self._on_device[key] = found
        return found

    def fits(self, batch: int) -> bool:
        """Whether a batch of `batch` rows holds a whole number of rows per sample."""
        return batch >= len(self) and batch % len(self) == 0




class PerSampleRouting:
    """NeatLinear's per-sample forward (a mixin: the layer's `neat`, `base_layer`, `_adapted`, `merged_adapter` and
    `disabled` are its own)."""

    sample_adapters: SampleAdapters | None = None
    _where: str = ""

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
        if x.dim() < 2 or not choice.fits(x.shape[0]):
            raise ValueError(f"adapters_per_sample has {len(choice)} adapter names, but NEAT layer {self._where} gets "
                             f"an input of shape {tuple(x.shape)}, whose first dimension should be the {len(choice)} "
                             f"samples (or a multiple of them: k rows per sample, each sample's together, as "
                             "generate's beams and returned sequences). Give one name per sample of the batch.")
        if self.disabled:
            return self.base_layer(x)
        groups = [(name, rows) for name, rows in choice.rows(x.device, x.shape[0]).items() if name in self.neat]
        if len(groups) == 1 and groups[0][1] == slice(0, x.shape[0]):  # one adapter for the whole batch
            return self._adapted(x, groups[0][0])
        y = self.base_layer(x)
        for name, rows in groups:
            part = y[rows]  # a view for a slice, a copy for an index tensor
            out = self._adapted(x[rows], name, part)
            if out is not part or not isinstance(rows, slice):
                y[rows] = out
        return y
