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
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
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
    def from_environment(cls, backend: str | None = None, timeout_s: float | None = None) -> WindowGroup | None:
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
            # the timeout bounds how long a collective waits for a rank that died or was stopped
            dist.init_process_group(backend=backend, **({"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}))
        group = cls(rank=dist.get_rank(), world_size=dist.get_world_size(), owns_default_group=owns)
        if owns:
            start_heartbeat(group.rank)
        return group

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


HEARTBEAT_PERIOD_S = 1.0
_HEARTBEAT_KEY = "fifo_diffusion/heartbeat/{rank}"


def _store() -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - private API: without it, lost ranks are simply not named
        return None


def start_heartbeat(rank: int) -> None:
    """Write this rank's wall-clock time to the group's store every second, from a daemon
    thread, so that when a collective fails the survivors can name the rank that went silent
    (killed, or stopped with SIGSTOP) instead of showing the backend's traceback."""
    store = _store()
    if store is None:
        return

    def beat() -> None:
        while True:
            try:
                store.set(_HEARTBEAT_KEY.format(rank=rank), repr(time.time()))
            except Exception:  # noqa: BLE001 - the store is gone: the group is ending anyway
                return
            time.sleep(HEARTBEAT_PERIOD_S)

    threading.Thread(target=beat, name="fifo-heartbeat", daemon=True).start()


def _heartbeats(store: Any, world_size: int, me: int) -> dict[int, str | None]:
    beats: dict[int, str | None] = {}
    for rank in range(world_size):
        if rank == me:
            continue
        try:
            beats[rank] = store.get(_HEARTBEAT_KEY.format(rank=rank)).decode() if store.check([_HEARTBEAT_KEY.format(rank=rank)]) else None
        except Exception:  # noqa: BLE001 - no heartbeat at all counts as silent
            beats[rank] = None
    return beats


def silent_ranks(world_size: int, me: int) -> list[int] | None:
    """Ranks whose heartbeat does not move over a few periods; ``None`` when it cannot be told.
    Ctrl-C and SIGTERM (torchrun ends the other workers when one dies) are ignored meanwhile."""
    store = _store()
    if store is None:
        return None
    # the run is ending anyway, so a stop request during the look is dropped rather than raised
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        before = _heartbeats(store, world_size, me)
        time.sleep(2.5 * HEARTBEAT_PERIOD_S)
        after = _heartbeats(store, world_size, me)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return [rank for rank in before if after[rank] is None or after[rank] == before[rank]]


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed (a peer closed its connection or the
    collective timed out) rather than a bug in this rank."""
    return isinstance(error, getattr(dist, "DistError", ())) or (
        isinstance(error, RuntimeError) and any(word in str(error) for word in ("gloo", "Gloo", "NCCL", "Connection closed by peer", "Timed out"))
    )


def describe_lost_group(group: WindowGroup, error: BaseException) -> str:
    """One line for a failed collective that names the lost rank(s) where the heartbeat tells."""
    silent = silent_ranks(group.world_size, group.rank)
    if silent:
        who = f"lost rank {', '.join(map(str, silent))} (no sign of life for several seconds: killed, stopped or hung)"
    else:
        who = "lost contact with another rank"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return (
        f"rank {group.rank}: {who}, so the run ends here ({first}). Start the run again; if a rank is only slow, "
        "raise --collective-timeout"
    )
