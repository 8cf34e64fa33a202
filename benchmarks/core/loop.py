"""The one training loop of every suite (image classification, GLUE, causal-LM fine-tuning, the ablations, the smoke
pre-training), on Accelerate.

One process (`python -m benchmarks.<suite>`), or several through `accelerate launch` (DDP, or FSDP2 with
configs/accelerate/fsdp.yaml) or `torchrun` (Accelerate reads its environment). Accelerate wraps the model (DDP /
FSDP), shards the data loaders and gathers evaluation outputs; this module owns what the recipes say: AdamW with
the classifier head at its own lr, linear warm-up (a share of the steps, or a number of steps) then linear or cosine
decay to zero, gradient-norm clipping, gradient accumulation to the recipe's effective batch (micro-batch x accumulation x
processes), and the precision policy: trainable weights in fp32, bf16 autocast on a GPU (Accelerate's
mixed_precision), none on a CPU.

What differs between suites is data: `loss_fn(model, batch) -> (loss, count)` (count: images, samples or tokens
for the throughput), `predict_fn(model, batch) -> (predictions, labels)` and an `on_epoch_end(epoch, model)` hook.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .errors import SetupError
from .methods import is_head_parameter
from .recipe import Recipe

PROGRESS_EVERY = 10  # steps between progress-bar updates (each reads the loss back from the device)
LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, Any]]


def uses_cuda(device: str | None) -> bool:
    """Whether a run with --device `device` (None: the default) trains on the GPU."""
    return torch.cuda.is_available() and (device is None or device.startswith("cuda"))


def accelerator_for(device: str | None = None, mixed: str = "bf16"):
    """The run's Accelerator: the GPU when there is one (unless --device cpu; `cuda:N` picks one), with the autocast
    `mixed` names there ("bf16", "fp16", "no"), plain fp32 on a CPU. A launcher's ACCELERATE_MIXED_PRECISION
    wins."""
    from accelerate import Accelerator

    cuda = uses_cuda(device)
    if cuda and device and ":" in device and "LOCAL_RANK" not in os.environ:
        torch.cuda.set_device(int(device.partition(":")[2]))
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or (mixed if cuda else "no")
    return Accelerator(cpu=not cuda, mixed_precision=mixed)


def seed_everything(seed: int) -> None:
    """torch's and numpy's global seeds (models' init, numpy-based augmentation)."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def accumulation(batch_size: int, micro_batch: int, world: int = 1) -> tuple[int, int]:
    """(micro-batch per process, accumulation steps) that make `batch_size` examples per optimizer step: the
    largest micro-batch <= `micro_batch` that divides batch_size / world, so the effective batch is exact."""
    if batch_size % world:
        raise SetupError(f"The effective batch {batch_size} does not split over {world} processes; pass "
                         f"--batch-size a multiple of {world}.")
    per_process = batch_size // world
    micro = next(m for m in range(min(micro_batch, per_process), 0, -1) if per_process % m == 0)
    return micro, per_process // micro


def make_loader(dataset: Dataset, batch_size: int, train: bool, workers: int, seed: int, accelerator,
                collate_fn: Callable | None = None, lengths: list[int] | None = None,
                drop_last: bool = True, shuffle: bool = True) -> DataLoader:
    """A data loader prepared by Accelerate (each process its shard). Training: shuffled from `seed` (unless
    `shuffle` is False: the dataset's own order), the last partial batch dropped (unless `drop_last` is False) when
    a full one exists for every process; with `lengths`, batches of similar lengths (transformers'
    LengthGroupedSampler). Evaluation: in order."""
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if train and lengths is not None:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    world = accelerator.num_processes
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=train and shuffle and sampler is None, sampler=sampler,
                        num_workers=workers, pin_memory=accelerator.device.type == "cuda",
                        persistent_workers=workers > 0,
                        drop_last=train and drop_last and len(dataset) >= batch_size * world,
                        generator=generator, collate_fn=collate_fn)
    return accelerator.prepare_data_loader(loader)


def optimizer_for(model: nn.Module, heads: list[str], recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with the head at recipe.head_lr and every other trainable parameter at recipe.lr."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in params if is_head_parameter(n, heads)]
    rest = [p for n, p in params if not is_head_parameter(n, heads)]
    head_lr = recipe.lr if recipe.head_lr is None else recipe.head_lr
    groups = [g for g in ({"params": head, "lr": head_lr}, {"params": rest, "lr": recipe.lr}) if g["params"]]
    return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)


def lr_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup_steps: int, shape: str = "linear"
                ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then decay to zero at `steps`: linear (transformers'
    get_linear_schedule_with_warmup, which the lineages' Trainer uses) or half a cosine
    (get_cosine_schedule_with_warmup, PEFT's MetaMathQA benchmark)."""
    warm = min(warmup_steps, steps)

    def factor(s: int) -> float:
        if s < warm:
            return s / warm
        progress = (s - warm) / max(1, steps - warm)
        if shape == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_steps(recipe: Recipe, steps: int) -> int:
    return recipe.warmup_steps if recipe.warmup_steps is not None else int(recipe.warmup * steps)


class MemoryMeter:
    """Peak allocated and reserved GPU memory of a run, and the reserved memory averaged over its steps (the
    figures PEFT's MetaMathQA result files record); nothing off CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device, self.reserved = device, []
        if self.cuda:   # blocks an earlier run of this process left in the allocator's cache would count as ours
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

    def step(self) -> None:
        if self.cuda:
            self.reserved.append(torch.cuda.memory_reserved(self.device))

    def stats(self) -> dict[str, float]:
        if not self.cuda:
            return {}
        mib = 2 ** 20
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(self.device) / mib,
                "peak_reserved_mib": torch.cuda.max_memory_reserved(self.device) / mib,
                "mean_reserved_mib": (sum(self.reserved) / len(self.reserved) / mib) if self.reserved else 0.0}


class BestCheckpoint:
    """Keeps the trainable weights of the step with the lowest held-out loss, in memory (no checkpoint files), and
    puts them back at the end: Trainer's `load_best_model_at_end` with evaluation every `every` optimizer steps, as
    the lineage's scripts that hold out a validation set run it."""

    def __init__(self, every: int, loss: Callable[[nn.Module], float]) -> None:
        self.every, self.loss = every, loss
        self.best, self.best_step, self.kept, self.losses = math.inf, None, None, []

    def step(self, model: nn.Module, done: int, trainable: list[torch.Tensor]) -> float:
        """Evaluate at every `every`-th step, keep the weights when they are the best so far; returns the seconds."""
        if done % self.every:
            return 0.0
        start = time.perf_counter()
        model.eval()
        value = self.loss(model)
        model.train()
        self.losses.append([done, value])
        if value < self.best:
            self.best, self.best_step = value, done
            self.kept = [p.detach().clone() for p in trainable]
        return time.perf_counter() - start

    def restore(self, trainable: list[torch.Tensor]) -> dict[str, Any]:
        if self.kept is not None:
            with torch.no_grad():
                for param, kept in zip(trainable, self.kept):
                    param.copy_(kept)
        return {"best_step": self.best_step, "best_eval_loss": self.best, "eval_losses": self.losses}


def train(model: nn.Module, loader: DataLoader, recipe: Recipe, accelerator, loss_fn: LossFn, *,
          heads: list[str] = (), grad_accum: int = 1, max_steps: int | None = None,
          on_epoch_end: Callable[[int, nn.Module], None] | None = None, keep_best: BestCheckpoint | None = None,
          progress: bool = True, unit: str = "images") -> tuple[nn.Module, dict[str, Any]]:
    """Train for recipe.epochs (or `max_steps` optimizer steps), one optimizer step per `grad_accum` micro-batches
    of `loader` (and one for an epoch's remainder), gradients clipped to recipe.clip_grad, the lr warming up then
    decaying to zero (recipe.schedule: linear or cosine); calls `on_epoch_end(epoch, prepared model)` after each epoch; with `keep_best`, ends on
    the weights of its best evaluated step. `loader` must be prepared (`make_loader`). Returns the prepared (wrapped)
    model and the statistics: the last epoch's mean loss, the loss of every optimizer step (mean over its
    micro-batches and processes), `unit`/s over all epochs, the training seconds (evaluation not counted), the
    steps and, on a GPU, memory."""
    optimizer = optimizer_for(model, list(heads), recipe)
    model, optimizer = accelerator.prepare(model, optimizer)
    per_epoch = math.ceil(len(loader) / grad_accum)
    steps = max(1, recipe.epochs * per_epoch)
    steps = min(steps, max_steps) if max_steps else steps
    schedule = lr_schedule(optimizer, steps, warmup_steps(recipe, steps), recipe.schedule)
    trainable = [p for p in model.parameters() if p.requires_grad]
    device, memory = accelerator.device, MemoryMeter(accelerator.device)
    units, seconds, done, epoch_loss = torch.zeros((), device=device), 0.0, 0, float("nan")
    step_losses: list[torch.Tensor] = []
    full = (len(loader) // grad_accum) * grad_accum
    for epoch in range(recipe.epochs):
        model.train()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False,
                   disable=not (progress and accelerator.is_main_process))
        total, count, running, start = torch.zeros((), device=device), 0, torch.zeros((), device=device), \
            time.perf_counter()
        for i, batch in enumerate(bar):
            last = (i + 1) % grad_accum == 0 or i + 1 == len(loader)
            group = grad_accum if i < full else len(loader) - full
            # several processes: gradients are reduced only on the micro-batch that ends an optimizer step
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                with accelerator.autocast():
                    loss, size = loss_fn(model, batch)
                accelerator.backward(loss / group)
            loss = loss.detach().float()
            total, count, running = total + loss, count + 1, running + loss / group
            units = units + size
            if last:
                if recipe.clip_grad is not None:
                    accelerator.clip_grad_norm_(trainable, recipe.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
                memory.step()
                step_losses.append(running)
                running, done = torch.zeros((), device=device), done + 1
                if keep_best is not None:
                    start += keep_best.step(model, done, trainable)   # evaluation is not training time
            # .item() waits for the device: only for a bar that shows, every PROGRESS_EVERY steps
            if not bar.disable and (count % PROGRESS_EVERY == 0 or i + 1 == len(loader)):
                rate = units.item() * accelerator.num_processes / (seconds + time.perf_counter() - start)
                bar.set_postfix({"loss": f"{total.item() / count:.3f}", f"{unit}/s": f"{rate:.0f}"})
            if done >= steps:
                break
        epoch_loss = total.item() / max(count, 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
        if done >= steps:
            break
    losses = accelerator.reduce(torch.stack(step_losses), reduction="mean").tolist() if step_losses else []
    total_units = float(accelerator.reduce(units.float(), reduction="sum").item())
    best = keep_best.restore(trainable) if keep_best is not None else {}
    return model, {"train_loss": epoch_loss, "step_losses": losses, f"train_{unit}_per_s": total_units / seconds,
                   f"train_{unit}": total_units, "train_seconds": seconds, "optimizer_steps": done,
                   "gradient_accumulation": grad_accum, **memory.stats(), **best}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, accelerator, predict_fn: Callable
            ) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and labels of the whole split on every process (`predict_fn(model, batch)` -> (predictions,
    labels); each process predicts its shard of the prepared `loader`, Accelerate gathers them without the
    padding it added)."""
    model.eval()
    preds, labels = [], []
    for batch in loader:
        with accelerator.autocast():
            p, y = predict_fn(model, batch)
        p, y = accelerator.gather_for_metrics((p.contiguous(), y.contiguous()))
        preds.append(p.float().cpu() if p.is_floating_point() else p.cpu())
        labels.append(y.cpu())
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def accuracy(model: nn.Module, loader: DataLoader, accelerator, predict_fn: Callable) -> float:
    """Top-1 accuracy over the whole split (every process gets the same number)."""
    from sklearn.metrics import accuracy_score

    preds, labels = predict(model, loader, accelerator, predict_fn)
    return float(accuracy_score(labels, preds))


def precision(model: nn.Module, accelerator) -> dict[str, Any]:
    """The dtypes a run used: of its trainable weights, of its frozen weights, and of autocast (None: off)."""
    def kinds(trainable: bool) -> list[str]:
        return sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad == trainable})

    mixed = accelerator.mixed_precision
    return {"trainable": kinds(True), "frozen": kinds(False), "autocast": None if mixed == "no" else mixed}


def ranks_agree(model: nn.Module, score: float, accelerator) -> bool:
    """Whether every process holds the same trainable weights and score (always true in one process)."""
    if accelerator.num_processes == 1:
        return True
    with torch.no_grad():
        checksum = sum(float(p.double().sum()) for p in model.parameters() if p.requires_grad)
    views = accelerator.gather(torch.tensor([[checksum, score]], dtype=torch.float64, device=accelerator.device))
    return bool((views == views[0]).all())


@contextlib.contextmanager
def whole_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every parameter is whole on every process (FSDP2 modules unsharded; a no-op otherwise), so
    adapters can be read and saved as plain tensors. Every process must enter it."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2: nothing can be sharded that way
        yield model
        return
    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for module in sharded:
        module.unshard()
    try:
        yield model
    finally:
        for module in sharded:
            module.reshard()


def is_fsdp(accelerator) -> bool:
    return accelerator.distributed_type.name == "FSDP"
