"""Forked CPU workers that look like torchrun's (gloo): a free port and the environment of one rank."""

from __future__ import annotations

import os
import socket

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def become_rank(rank: int, port: int, world: int = 2, **env: str) -> None:
    """Set torchrun's environment for `rank` (plus `env`), one CPU thread, and forget the parent's Accelerate state
    (a forked worker inherits the world of one the test process already set up)."""
    from accelerate.state import AcceleratorState

    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)
