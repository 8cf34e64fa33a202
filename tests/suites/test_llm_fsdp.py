"""FSDP with NEAT, on what runs on a CPU.

Accelerate runs FSDP only on accelerators (with several CPU processes it falls back to DDP), so the suite's
`accelerate launch --config_file configs/accelerate/fsdp.yaml` path itself cannot run here. What is tested: the
shipped config, read by Accelerate's own launcher and plugin, shards one unit per decoder layer (so NEAT's frozen
weight and its network are gathered together); torch's FSDP2 `fully_shard` applied that way on a gloo CPU mesh
with gradient checkpointing gives the single-process losses and adapters of NEAT, and evaluations between training
steps read no stale inference cache; `whole_parameters` lets a sharded model's adapter be saved as the unsharded
one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import neat_core
import neat_text
from benchmarks.llm.generate import checkpoint_activations
from support.distributed import become_rank, free_port
from support.tiny_llama import tiny_llama

ROOT = Path(__file__).parents[2]
STEPS, RANK = 3, 4


def fsdp_environment() -> dict[str, str]:
    """The environment `accelerate launch --config_file configs/accelerate/fsdp.yaml` gives its processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(ROOT / "configs/accelerate/fsdp.yaml"), "-m",
                                               "benchmarks.llm"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    return {k: v for k, v in env.items() if k.startswith(("FSDP_", "ACCELERATE_"))}


def wrap_policy(model: torch.nn.Module):
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    plugin = FullyShardedDataParallelPlugin()  # reads the environment
    assert plugin.fsdp_version == 2
    return fsdp2_prepare_auto_wrap_policy(plugin, model)


def neat_model() -> torch.nn.Module:
    model = neat_text.patch(tiny_llama(), preset="paper_llm", rank=RANK)
    return checkpoint_activations(model).train()


BATCH = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(7))  # equal lengths: mean of means


def steps(model: torch.nn.Module, rows: slice, step=None) -> list[float]:
    """STEPS AdamW steps on BATCH[rows]; the loss of each (all-reduced to the mean when `step` says so)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    losses = []
    for _ in range(STEPS):
        loss = model(input_ids=BATCH[rows], labels=BATCH[rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(step(loss) if step else loss.item())
    return losses


def evaluate(model: torch.nn.Module) -> tuple[float, int]:
    """The loss on BATCH in eval mode without autograd (NEAT's inference cache is built), and the cache's size."""
    model.eval()
    with torch.no_grad():
        loss = model(input_ids=BATCH, labels=BATCH).loss.item()
    model.train()
    return loss, sum(len(layer._inference_cache) for _, layer in neat_core.neat_layers(model))


def train_and_evaluate(model: torch.nn.Module, rows: slice, step=None) -> tuple[list[float], list[float], int]:
    """Losses of training, evaluating (the cache is filled), training again (the cache must not survive it:
    FSDP2 gathers the changed parameters into the same storage) and evaluating again; the cache's size."""
    losses = steps(model, rows, step)
    first, _ = evaluate(model)
    losses += steps(model, rows, step)
    second, cached = evaluate(model)
    return losses, [first, second], cached


def test_the_shipped_fsdp_config_shards_whole_decoder_layers(monkeypatch):
    for key, value in fsdp_environment().items():
        monkeypatch.setenv(key, value)
    model = neat_model()
    policy = wrap_policy(model)
    assert [n for n, m in model.named_modules() if policy(m)] == ["model.layers.0", "model.layers.1"]
    # every NEAT layer (its frozen base weight and its network) sits inside one of those units
    assert all(n.startswith(("model.layers.0.", "model.layers.1.")) for n, _ in neat_core.neat_layers(model))


def _fsdp_rank(rank: int, port: int, env: dict[str, str], folder: str, queue) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    from benchmarks.core.loop import whole_parameters

    become_rank(rank, port, **env)
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (2,))
    model = neat_model()
    policy = wrap_policy(model)
    for module in reversed(list(model.modules())):  # bottom-up, as Accelerate's fsdp2_prepare_model
        if module is not model and policy(module) and not isinstance(module, FSDPModule):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    sharded = {type(p).__name__ for _, layer in neat_core.neat_layers(model) for p in layer.parameters()}

    def mean(loss: torch.Tensor) -> float:
        total = loss.detach().clone()
        dist.all_reduce(total)
        return total.item() / 2

    losses, evals, cached = train_and_evaluate(model, slice(2 * rank, 2 * rank + 2), mean)
    with whole_parameters(model) as whole:
        if rank == 0:
            neat_core.save_adapter(whole, folder)
    if rank == 0:
        queue.put((sorted(sharded), losses, evals, cached))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_sharded_neat_trains_like_one_process(tmp_path):
    import torch.multiprocessing as mp

    single = neat_model()
    expected, expected_evals, _ = train_and_evaluate(single, slice(0, 4))
    port = free_port()
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_fsdp_rank, args=(port, fsdp_environment(), str(tmp_path / "sharded"), queue), nprocs=2,
                       start_method="fork")
    sharded, losses, evals, cached = queue.get()
    assert sharded == ["DTensor"]                            # the NEAT layers' weights really were sharded
    assert losses == pytest.approx(expected, abs=1e-5)       # the same loss, step after step
    assert evals == pytest.approx(expected_evals, abs=1e-5) and cached == 10   # 5 projections x 2 layers, cached
    saved = neat_core.read_adapter(tmp_path / "sharded")[2]
    trained = {f"{name}.neat.{p}": t for name, layer in neat_core.neat_layers(single)
               for p, t in layer.neat["default"].named_parameters()}
    assert saved.keys() == trained.keys()
    for key, tensor in trained.items():
        torch.testing.assert_close(saved[key], tensor.detach(), atol=1e-5, rtol=1e-4)
