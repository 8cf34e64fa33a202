"""The one training / evaluation loop of the benchmarks (single process or DDP through torchrun).

AdamW with separate head and backbone learning rates, linear decay to zero, bf16 autocast on CUDA,
gradient accumulation, DataLoader workers with pinned memory, a progress bar with loss and images/s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

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
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(torch_dist.get_rank(), torch_dist.get_world_size())


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, train: bool, workers: int, seed: int, dist: Dist,
                device: torch.device) -> DataLoader:
    """Training: shuffled (per rank with DistributedSampler), last partial batch dropped only when a full one
    exists. Evaluation: this rank's shard, in order."""
    sampler = None
    if train and dist.world > 1:
        sampler = DistributedSampler(dataset, dist.world, dist.rank, shuffle=True, seed=seed)
    elif not train and dist.world > 1:
        dataset = Subset(dataset, range(dist.rank, len(dataset), dist.world))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      drop_last=train and len(dataset) >= batch_size * dist.world, generator=generator)


def optimizer_for(model: nn.Module, heads: list[str], recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with the head at recipe.head_lr and every other trainable parameter at recipe.lr."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in params if is_head_parameter(n, heads)]
    rest = [p for n, p in params if not is_head_parameter(n, heads)]
    groups = [g for g in ({"params": head, "lr": recipe.head_lr}, {"params": rest, "lr": recipe.lr}) if g["params"]]
    return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(model: nn.Module, loader: DataLoader, recipe: Recipe, heads: list[str], device: torch.device,
          dist: Dist = Dist(), progress: bool = True) -> dict[str, float]:
    """Train for recipe.epochs; returns the last epoch's mean loss, images/s over all epochs and seconds."""
    optimizer = optimizer_for(model, heads, recipe)
    steps = max(1, recipe.epochs * (len(loader) // recipe.grad_accum))
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=steps)
    model.train()
    images, start, loss_mean = 0, time.perf_counter(), float("nan")
    for epoch in range(recipe.epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False, disable=not (progress and dist.main))
        total, count = 0.0, 0
        for step, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device):
                loss = F.cross_entropy(model(x), y)
            (loss / recipe.grad_accum).backward()
            if (step + 1) % recipe.grad_accum == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
            images += len(x) * dist.world
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.3f}", img_s=f"{images / (time.perf_counter() - start):.0f}")
        loss_mean = total / max(count, 1)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"train_loss": loss_mean, "train_images_per_s": images / seconds, "train_seconds": seconds}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        with _autocast(device):
            preds.append(model(x.to(device, non_blocking=True)).argmax(-1).cpu())
        labels.append(y)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dist: Dist = Dist()) -> float:
    """Top-1 accuracy over the whole split (every rank evaluates its shard; all ranks get the same number)."""
    preds, labels = predict(model, loader, device)
    if dist.world > 1:
        shards: list = [None] * dist.world
        torch_dist.all_gather_object(shards, (preds, labels))
        preds = np.concatenate([s[0] for s in shards])
        labels = np.concatenate([s[1] for s in shards])
    return float(accuracy_score(labels, preds))


def split_loaders(splits, data_config: dict, hflip: bool, recipe: Recipe, workers: int, seed: int, dist: Dist,
                  device: torch.device) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train / val / test loaders of `splits` (neat_vision.data.Splits) with the model's timm data config.
    Each process loads batch_size / (grad_accum * world) images per step, so the effective batch is the recipe's."""
    from neat_vision.data import ImageDataset, build_transform

    micro = max(1, recipe.batch_size // (recipe.grad_accum * dist.world))
    train_tf = build_transform(data_config, train=True, hflip=hflip, crop_scale=recipe.crop_scale)
    eval_tf = build_transform(data_config, train=False)
    return (make_loader(ImageDataset(splits.train, train_tf), micro, True, workers, seed, dist, device),
            make_loader(ImageDataset(splits.val, eval_tf), micro * 2, False, workers, seed, dist, device),
            make_loader(ImageDataset(splits.test, eval_tf), micro * 2, False, workers, seed, dist, device))
