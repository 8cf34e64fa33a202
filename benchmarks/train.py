"""The one training / evaluation loop of the benchmarks (single process or DDP through torchrun).

AdamW with separate head and backbone learning rates, linear warm-up then decay to zero, gradient-norm clipping,
bf16 autocast on CUDA over fp32 trainable weights, gradient accumulation (the recipe's batch is the effective
batch; the micro-batch only sets memory use), DataLoader workers with pinned memory, a progress bar with loss
and samples/s.
Batches are (images, labels) by default; other data (GLUE's token dicts) passes its own loss and prediction
functions, and `on_epoch_end` may evaluate after every epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from sklearn.metrics import accuracy_score
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from .methods import is_head_parameter
from .recipes import Recipe


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (world 1 when run plainly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun / accelerate launch set up (WORLD_SIZE > 1), else a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not torch_dist.is_initialized():
        if device.type == "cuda":  # NCCL's collectives use the current device: this rank's GPU
            torch.cuda.set_device(device)
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(torch_dist.get_rank(), torch_dist.get_world_size())


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, train: bool, workers: int, seed: int, dist: Dist,
                device: torch.device, collate_fn: Callable | None = None,
                lengths: list[int] | None = None) -> DataLoader:
    """Training: shuffled (per rank with DistributedSampler), last partial batch dropped only when a full one
    exists; with `lengths` (one process), batches of similar lengths (transformers' LengthGroupedSampler).
    Evaluation: this rank's shard, in order."""
    sampler = None
    generator = torch.Generator().manual_seed(seed)
    if train and dist.world > 1:
        sampler = DistributedSampler(dataset, dist.world, dist.rank, shuffle=True, seed=seed)
    elif train and lengths is not None:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    elif not train and dist.world > 1:
        dataset = Subset(dataset, range(dist.rank, len(dataset), dist.world))
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      drop_last=train and len(dataset) >= batch_size * dist.world, generator=generator,
                      collate_fn=collate_fn)


def optimizer_for(model: nn.Module, heads: list[str], recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with the head at recipe.head_lr and every other trainable parameter at recipe.lr."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in params if is_head_parameter(n, heads)]
    rest = [p for n, p in params if not is_head_parameter(n, heads)]
    groups = [g for g in ({"params": head, "lr": recipe.head_lr}, {"params": rest, "lr": recipe.lr}) if g["params"]]
    return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)


def accumulation(batch_size: int, micro_batch: int, world: int = 1) -> tuple[int, int]:
    """(micro-batch per process, accumulation steps) that make `batch_size` images per optimizer step: the
    largest micro-batch <= `micro_batch` that divides batch_size / world, so the effective batch is exact."""
    if batch_size % world:
        raise ValueError(f"The effective batch {batch_size} does not split over {world} processes; pass "
                         f"--batch-size a multiple of {world}.")
    per_process = batch_size // world
    micro = next(m for m in range(min(micro_batch, per_process), 0, -1) if per_process % m == 0)
    return micro, per_process // micro


AUTOCAST_DTYPE = torch.bfloat16  # compute dtype on CUDA; trainable weights stay fp32 (master weights)


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPE, enabled=device.type == "cuda")


def precision(model: nn.Module, device: torch.device) -> dict[str, Any]:
    """The dtypes a run used: of its trainable weights, of its frozen weights, and of autocast (None: off)."""
    def kinds(trainable: bool) -> list[str]:
        return sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad == trainable})

    return {"trainable": kinds(True), "frozen": kinds(False),
            "autocast": str(AUTOCAST_DTYPE).removeprefix("torch.") if device.type == "cuda" else None}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


PROGRESS_EVERY = 10  # steps between progress-bar updates (each reads the loss back from the device)


def linear_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float = 0.0
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first `warmup` fraction of `steps`, then linear decay to zero."""
    warm = int(warmup * steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))


def image_loss(model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
    """Cross-entropy of an (images, labels) batch, and its size."""
    x, y = (t.to(device, non_blocking=True) for t in batch)
    return F.cross_entropy(model(x), y), len(x)


def image_predictions(model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and labels of an (images, labels) batch."""
    x, y = batch
    return model(x.to(device, non_blocking=True)).argmax(-1), y


def train(model: nn.Module, loader: DataLoader, recipe: Recipe, heads: list[str], device: torch.device,
          dist: Dist = Dist(), progress: bool = True, loss_fn: Callable = image_loss, unit: str = "images",
          on_epoch_end: Callable[[int], None] | None = None, grad_accum: int = 1) -> dict[str, float]:
    """Train for recipe.epochs, one optimizer step per `grad_accum` micro-batches of `loader` (and one for an
    epoch's remainder), gradients clipped to recipe.clip_grad, the lr warming up over recipe.warmup of the steps
    and decaying linearly to zero; calls `on_epoch_end(epoch)` after each epoch. Returns the last epoch's mean
    loss, `unit`/s over all epochs, the training seconds (neither counts on_epoch_end's time) and the steps."""
    optimizer = optimizer_for(model, heads, recipe)
    per_epoch = math.ceil(len(loader) / grad_accum)
    steps = max(1, recipe.epochs * per_epoch)
    schedule = linear_schedule(optimizer, steps, recipe.warmup)
    trainable = [p for p in model.parameters() if p.requires_grad]
    samples, seconds, loss_mean = 0, 0.0, float("nan")
    for epoch in range(recipe.epochs):
        model.train()
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False, disable=not (progress and dist.main))
        total, count, start = torch.zeros((), device=device), 0, time.perf_counter()
        for step, batch in enumerate(bar):
            last = (step + 1) % grad_accum == 0 or step + 1 == len(loader)
            group = grad_accum if step < (len(loader) // grad_accum) * grad_accum else len(loader) % grad_accum
            # DDP: gradients are all-reduced only on the micro-batch that ends an optimizer step
            sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with autocast(device):
                    loss, size = loss_fn(model, batch, device)
                (loss / group).backward()
            if last:
                if recipe.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, recipe.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
            samples += size * dist.world
            total, count = total + loss.detach().float(), count + 1
            if count % PROGRESS_EVERY == 0 or count == len(loader):  # .item() waits for the GPU: not every step
                rate = samples / (seconds + time.perf_counter() - start)
                bar.set_postfix({"loss": f"{total.item() / count:.3f}", f"{unit}/s": f"{rate:.0f}"})
        loss_mean = total.item() / max(count, 1)
        synchronize(device)
        seconds += time.perf_counter() - start
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return {"train_loss": loss_mean, f"train_{unit}_per_s": samples / seconds, "train_seconds": seconds,
            "optimizer_steps": steps}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device,
            predict_fn: Callable = image_predictions) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and labels of every batch (`predict_fn(model, batch, device)` -> (predictions, labels))."""
    model.eval()
    preds, labels = [], []
    for batch in loader:
        with autocast(device):
            p, y = predict_fn(model, batch, device)
        preds.append(p.float().cpu() if p.is_floating_point() else p.cpu())
        labels.append(y.cpu())
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def ranks_agree(model: nn.Module, accuracy: float, dist: Dist) -> bool:
    """Whether every rank holds the same trainable weights and accuracy (always true in a world of one)."""
    if dist.world == 1:
        return True
    with torch.no_grad():
        checksum = sum(float(p.double().sum()) for p in model.parameters() if p.requires_grad)
    views: list = [None] * dist.world
    torch_dist.all_gather_object(views, (checksum, accuracy))
    return all(v == views[0] for v in views)


def gather_predictions(model: nn.Module, loader: DataLoader, device: torch.device, dist: Dist = Dist(),
                       predict_fn: Callable = image_predictions) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and labels of the whole split (every rank predicts its shard; all ranks get them all)."""
    preds, labels = predict(model, loader, device, predict_fn)
    if dist.world > 1:
        shards: list = [None] * dist.world
        torch_dist.all_gather_object(shards, (preds, labels))
        preds = np.concatenate([s[0] for s in shards])
        labels = np.concatenate([s[1] for s in shards])
    return preds, labels


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dist: Dist = Dist()) -> float:
    """Top-1 accuracy over the whole split (all ranks get the same number)."""
    preds, labels = gather_predictions(model, loader, device, dist)
    return float(accuracy_score(labels, preds))


def split_loaders(splits, data_config: dict, hflip: bool, recipe: Recipe, micro: int, workers: int, seed: int,
                  dist: Dist, device: torch.device) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train / val / test loaders of `splits` (neat_vision.data.Splits) with the model's timm data config; each
    process loads `micro` images per step (see `accumulation`)."""
    from neat_vision.data import ImageDataset, build_transform

    train_tf = build_transform(data_config, train=True, hflip=hflip, crop_scale=recipe.crop_scale,
                               seed=seed + dist.rank)
    eval_tf = build_transform(data_config, train=False)
    keep = getattr(splits, "in_memory", False)
    return (make_loader(ImageDataset(splits.train, train_tf, keep), micro, True, workers, seed, dist, device),
            make_loader(ImageDataset(splits.val, eval_tf, keep), micro * 2, False, workers, seed, dist, device),
            make_loader(ImageDataset(splits.test, eval_tf, keep), micro * 2, False, workers, seed, dist, device))
