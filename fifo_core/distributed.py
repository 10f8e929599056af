"""Spread the windows of each FIFO iteration over processes with ``torch.distributed``.

The windows of one iteration are independent (paper, section 3.3), so each rank evaluates a share
of them and the outputs are exchanged with one ``all_gather``. Every rank then applies the same
per-frame step to the same queue: since all noise is drawn from ``(seed, stream, index)``
generators, the queues stay identical on every rank without sending latents around, and the
output equals a single-process run's. Rank 0 feeds the sinks.

Launch with ``torchrun`` (one process per GPU, any number of nodes with torchrun's usual
``--nnodes``/``--rdzv-endpoint`` arguments); NCCL is used for CUDA tensors, gloo on CPUs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class WindowGroup:
    """This process's place among the ranks that share the windows."""

    rank: int
    world_size: int
    process_group: Any = None
    owns_default_group: bool = False

    @classmethod
    def from_environment(cls, backend: str | None = None) -> WindowGroup | None:
        """The group torchrun describes in the environment, or ``None`` for a single process.

        Initialises the default process group if needed; with CUDA, each process is pinned to
        the GPU ``LOCAL_RANK`` so backbones can simply use ``device="cuda"``.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        owns = not dist.is_initialized()
        if owns:
            if backend is None:
                backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend=backend)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), owns_default_group=owns)

    def close(self, *, wait_for_others: bool = True) -> None:
        """Leave the group: wait until every rank is done, then tear down the process group if
        :meth:`from_environment` created it.

        Exiting with a live gloo or NCCL group lets the interpreter destroy its communication
        threads mid-flight, which aborts the process (``terminate called without an active
        exception``) and makes torchrun report the whole run failed. Pass
        ``wait_for_others=False`` when leaving because of an error: the other ranks may never
        reach the barrier.
        """
        if not self.owns_default_group or not dist.is_initialized():
            return
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def my_rows(self, rows: int) -> list[int]:
        """Rows this rank evaluates: round-robin, so ranks differ by at most one row."""
        return list(range(self.rank, rows, self.world_size))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank; every rank must call this at the same point."""
        on_gpu = dist.get_backend(self.process_group) == "nccl"
        value = torch.tensor([1.0 if flag else 0.0], device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.process_group)
        return bool(value.item() > 0)

    def gather_rows(self, mine: torch.Tensor, rows: int) -> torch.Tensor:
        """Reassemble ``rows`` outputs from every rank's share; ``mine`` is ``'k ...'`` in
        :meth:`my_rows` order. Returns ``'rows ...'`` on every rank."""
        per_rank = math.ceil(rows / self.world_size)
        padded = mine.new_zeros((per_rank, *mine.shape[1:]))
        padded[: mine.shape[0]] = mine
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded, group=self.process_group)
        return torch.stack([gathered[row % self.world_size][row // self.world_size] for row in range(rows)])
