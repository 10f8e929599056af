"""Spread the windows of each FIFO iteration over processes with ``torch.distributed``.

The windows of one iteration are independent (paper, section 3.3), so each rank evaluates a share
of them and the outputs are exchanged with one ``all_gather``. Every rank then applies the same
per-frame step to the same queue: since all noise is drawn from ``(seed, stream, index)``
generators, the queues stay identical on every rank without sending latents around, and the
output equals a single-process run's. Rank 0 feeds the sinks.

Launch with ``torchrun`` (one process per GPU, any number of nodes with torchrun's usual
``--nnodes``/``--rdzv-endpoint`` arguments); NCCL is used for CUDA tensors, gloo on CPUs.

Ending: torchrun forwards a SIGINT or SIGTERM it gets to every worker, waits for them for its
``--shutdown-timeout`` (30 s by default) and then sends SIGKILL. The ranks agree to stop after the
same iteration (:func:`fifo_core.api.generate`). A collective blocks signal handlers while it
waits, so :meth:`WindowGroup._finish` waits in short slices; once this rank was told to stop it
gives up on a rank whose heartbeat stands still (stopped with SIGSTOP, or hung), so the live
ranks close their sinks and exit within seconds and the stopped one is left to torchrun's SIGKILL.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from fifo_core.stopping import RunStopped, StopRequest

STOPPING_SILENCE_S = 3.0
"""Once this rank was told to stop, a rank whose heartbeat has not moved for this long is taken
to be unable to answer (stopped or hung), and this rank ends its run without it."""
STOPPING_PATIENCE_S = 20.0
"""The longest a rank told to stop waits in one collective for ranks that still beat: below
torchrun's default ``--shutdown-timeout`` of 30 s, so rank 0 closes its sinks before SIGKILL."""
_WAIT_SLICE = timedelta(milliseconds=100)  # how soon a signal's handler runs while a collective waits


class StoppedWithoutOthers(RunStopped):
    """This rank was told to stop and ended its run without a rank that did not answer or had
    left already; the message is one line saying which."""


@dataclass
class _Leaving:
    """How this rank's run ends: the stop request that cuts its waits short, why it stopped
    without the others (if it did), whether it left a collective unfinished, and the heartbeat
    to end when it leaves."""

    stop: StopRequest | None = None
    note: str | None = None
    abandoned_collective: bool = False
    heartbeat_done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class WindowGroup:
    """This process's place among the ranks that share the windows."""

    rank: int
    world_size: int
    process_group: Any = None
    owns_default_group: bool = False
    _leaving: _Leaving = field(default_factory=_Leaving, compare=False, repr=False)

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
            start_heartbeat(group.rank, group._leaving.heartbeat_done)
        return group

    def answer_to(self, stop: StopRequest) -> None:
        """Let ``stop`` cut this rank's waits short: once it is set, a collective waits for the
        other ranks only while they show signs of life (see :data:`STOPPING_SILENCE_S`)."""
        self._leaving.stop = stop

    @property
    def stopped_without_others(self) -> str | None:
        """One line saying why this rank ended its run without the others, or ``None``."""
        return self._leaving.note

    def close(self, *, wait_for_others: bool = True) -> None:
        """Leave the group: wait until every rank is done, then tear down the process group if
        :meth:`from_environment` created it.

        Exiting with a live gloo or NCCL group lets the interpreter destroy its communication
        threads mid-flight, which aborts the process (``terminate called without an active
        exception``) and makes torchrun report the whole run failed. Pass
        ``wait_for_others=False`` when leaving because of an error: the other ranks may never
        reach the barrier. A rank that left a collective unfinished (told to stop, it gave up on a
        silent rank, or a second Ctrl-C came) does not tear the group down, which would wait for
        that collective: the process exits with the group in place.
        """
        if not self.owns_default_group or not dist.is_initialized():
            return
        self._leaving.heartbeat_done.set()
        store = _store()
        if store is not None:
            try:  # the others then know this rank left on purpose, and do not call it lost
                store.set(_LEFT_KEY.format(rank=self.rank), "1")
            except Exception:  # noqa: BLE001 - the store is gone: the group is ending anyway
                pass
        if self._leaving.abandoned_collective:
            return  # destroying the group would wait for that collective, maybe for a rank that cannot answer
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
        on_gpu = self._on_gpu()
        value = torch.tensor([1.0 if flag else 0.0], device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
        self._finish(dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.process_group, async_op=True))
        return bool(value.item() > 0)

    def gather_rows(self, mine: torch.Tensor, rows: int) -> torch.Tensor:
        """Reassemble ``rows`` outputs from every rank's share; ``mine`` is ``'k ...'`` in
        :meth:`my_rows` order. Returns ``'rows ...'`` on every rank."""
        per_rank = math.ceil(rows / self.world_size)
        padded = mine.new_zeros((per_rank, *mine.shape[1:]))
        padded[: mine.shape[0]] = mine
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._finish(dist.all_gather(gathered, padded, group=self.process_group, async_op=True))
        return torch.stack([gathered[row % self.world_size][row // self.world_size] for row in range(rows)])

    def _on_gpu(self) -> bool:
        return dist.get_backend(self.process_group) == "nccl"

    def _finish(self, work: Any) -> None:
        """Wait for the collective ``work``. In slices, so that a signal's handler runs meanwhile;
        once this rank was told to stop, raise :class:`StoppedWithoutOthers` rather than wait
        for a rank that stays silent or has left."""
        stop, watch = self._leaving.stop, None
        try:
            while not _completed(work, self._on_gpu()):
                if stop is None or not stop.is_set():
                    continue
                watch = watch or _PeerWatch(self.world_size, self.rank)
                silent = watch.silent()
                if silent:
                    self._stop_without_others(
                        f"rank {_ranks(silent)} did not answer for {STOPPING_SILENCE_S:.0f} s (stopped or hung), so this rank ended "
                        "without it; torchrun sends SIGKILL to it after its --shutdown-timeout (30 s unless set)"
                    )
                if watch.waited_s > STOPPING_PATIENCE_S:
                    self._stop_without_others(f"the other ranks did not answer within {STOPPING_PATIENCE_S:.0f} s, so this rank ended without them")
        except Exception as error:
            if stop is None or not stop.is_set() or not is_collective_failure(error):
                raise
            # in a pair, a failed collective means the other rank went away
            left = left_ranks(self.world_size, self.rank) or ([1 - self.rank] if self.world_size == 2 else [])
            self._stop_without_others(f"rank {_ranks(left)} had already left, so this rank stopped too" if left else "another rank had already left, so this rank stopped too", error)
        finally:
            if not work.is_completed():
                self._leaving.abandoned_collective = True

    def _stop_without_others(self, reason: str, cause: BaseException | None = None) -> None:
        self._leaving.note = f"rank {self.rank}: stopped by a signal; {reason}"
        raise StoppedWithoutOthers(self._leaving.note) from cause


def _completed(work: Any, on_gpu: bool) -> bool:
    """Wait a slice of time for ``work``: ``True`` once it is done, its error if it failed."""
    if on_gpu:
        # NCCL's wait() only orders CUDA streams; the CPU would block later, in a synchronisation
        # that no signal handler can interrupt, so poll until the collective has run
        if not work.is_completed():
            time.sleep(0.001)
            return False
        work.wait()
        return True
    try:
        work.wait(timeout=_WAIT_SLICE)
    except RuntimeError:
        if not work.is_completed():
            return False  # only the slice ran out
        work.wait()  # the collective's own outcome: its error, or done just after the slice
    return True


def _ranks(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks))


class _PeerWatch:
    """The other ranks' heartbeats, read at most twice a second from when the watch began: a
    rank is silent once its beat has not changed for :data:`STOPPING_SILENCE_S`."""

    def __init__(self, world_size: int, me: int) -> None:
        self.world_size, self.me, self.store = world_size, me, _store()
        self.began = self.read_at = time.monotonic()
        self.beats: dict[int, str | None] = {}
        self.changed_at: dict[int, float] = {}
        self._read()

    @property
    def waited_s(self) -> float:
        return time.monotonic() - self.began

    def _read(self) -> None:
        self.read_at = now = time.monotonic()
        for rank, beat in _heartbeats(self.store, self.world_size, self.me).items():
            if rank not in self.beats or beat != self.beats[rank]:
                self.beats[rank], self.changed_at[rank] = beat, now

    def silent(self) -> list[int]:
        if self.store is None:
            return []  # cannot be told: STOPPING_PATIENCE_S ends the wait
        if time.monotonic() - self.read_at >= 0.5:
            self._read()
        return [rank for rank, at in self.changed_at.items() if self.read_at - at >= STOPPING_SILENCE_S]


HEARTBEAT_PERIOD_S = 1.0
_HEARTBEAT_KEY = "fifo_diffusion/heartbeat/{rank}"
_LEFT_KEY = "fifo_diffusion/left/{rank}"


def _store() -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - private API: without it, lost ranks are simply not named
        return None


def start_heartbeat(rank: int, done: threading.Event | None = None) -> None:
    """Write this rank's wall-clock time to the group's store every second, from a daemon
    thread, until ``done`` is set, so that when a collective fails the survivors can name the rank
    that went silent (killed, or stopped with SIGSTOP) instead of showing the backend's traceback."""
    store = _store()
    if store is None:
        return
    done = done or threading.Event()

    def beat() -> None:
        while not done.is_set():
            try:
                store.set(_HEARTBEAT_KEY.format(rank=rank), repr(time.time()))
            except Exception:  # noqa: BLE001 - the store is gone: the group is ending anyway
                return
            done.wait(HEARTBEAT_PERIOD_S)

    threading.Thread(target=beat, name="fifo-heartbeat", daemon=True).start()


def left_ranks(world_size: int, me: int) -> list[int]:
    """The other ranks that left the group on purpose (through :meth:`WindowGroup.close`)."""
    store = _store()
    if store is None:
        return []
    left = []
    for rank in range(world_size):
        try:
            if rank != me and store.check([_LEFT_KEY.format(rank=rank)]):
                left.append(rank)
        except Exception:  # noqa: BLE001 - the store is gone: nothing to tell
            return []
    return left


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
    left = left_ranks(group.world_size, group.rank)
    silent = None if left else silent_ranks(group.world_size, group.rank)
    if left:
        who = f"rank {_ranks(left)} left the run first (it was stopped or failed; its own message says which)"
    elif silent:
        who = f"lost rank {', '.join(map(str, silent))} (no sign of life for several seconds: killed, stopped or hung)"
    else:
        who = "lost contact with another rank"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return (
        f"rank {group.rank}: {who}, so the run ends here ({first}). Start the run again; if a rank is only slow, "
        "raise --collective-timeout"
    )
