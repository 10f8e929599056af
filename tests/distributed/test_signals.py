"""Issue #13, item 14: SIGTERM and SIGSTOP under torchrun.

torchrun forwards the signal it gets to every worker and sends SIGKILL to those still running
after its ``--shutdown-timeout`` (30 s by default). A stopped rank cannot answer, so the live
ranks must not wait for it: they close their sinks (every frame written stays playable) and
exit within seconds, naming the rank that did not answer. A rank whose peer left because it was
told to stop says the run was stopped, not that it lost that rank.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from fifo_core.api import RunConfig, StopRequest, generate
from fifo_core.distributed import WindowGroup
from fifo_core.plugins import default_plugins, hookimpl

from .test_lost_rank import worker_pid
from .test_windows_over_ranks import free_port

EXIT_PROMPTLY_S = 15  # torchrun's SIGKILL comes after 30 s; a live rank that waits for a stopped one is past it


def _running(pid: int) -> bool:
    """Whether ``pid`` is still a live process (an exited worker stays a zombie until torchrun reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stopped_rank", [None, 1, 0], ids=["all-live", "rank1-stopped", "rank0-stopped"])
def test_sigterm_to_torchrun_ends_every_live_rank_promptly_with_every_frame_kept(tmp_path: Path, stopped_rank: int | None) -> None:
    env = dict(os.environ, FIFO_DIFFUSION_PLUGINS="gaussian,sinks", OMP_NUM_THREADS="1")
    frames, video = tmp_path / "frames", tmp_path / "video.mp4"
    port = free_port()
    torchrun = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(port), "-m", "fifo_core.cli", "generate", "a red circle", "--backbone", "gaussian-ar1",
         "--sink", f"{frames}/", "--sink", str(video), "-q"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    ranks: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list(frames.glob("*.png"))) < 5:
            time.sleep(0.2)
        ranks = [worker_pid(port, rank) for rank in (0, 1)]
        assert None not in ranks, f"workers not found: {ranks}"
        if stopped_rank is not None:
            os.kill(ranks[stopped_rank], signal.SIGSTOP)
            time.sleep(1)  # the live rank is now waiting for it in a collective
        torchrun.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        live = [pid for rank, pid in enumerate(ranks) if rank != stopped_rank]
        while time.monotonic() - signalled < EXIT_PROMPTLY_S and any(map(_running, live)):
            time.sleep(0.1)
        still_running = [rank for rank, pid in enumerate(ranks) if rank != stopped_rank and _running(pid)]
    finally:
        if stopped_rank is not None and ranks and ranks[stopped_rank] is not None:
            os.kill(ranks[stopped_rank], signal.SIGKILL)  # torchrun would, after its shutdown timeout
        _, stderr = torchrun.communicate(timeout=60)
    assert not still_running, f"live rank(s) {still_running} still running {EXIT_PROMPTLY_S}s after SIGTERM:\n{stderr[-3000:]}"
    assert not re.search(r'File ".*fifo_core', stderr), stderr[-3000:]  # torchrun's own traceback names only torch
    assert "lost rank" not in stderr, stderr[-3000:]
    if stopped_rank is not None:
        live_rank = 1 - stopped_rank
        assert re.search(rf"rank {live_rank}: stopped by a signal; rank {stopped_rank} did not answer", stderr), stderr[-3000:]
    if stopped_rank != 0:  # rank 0 writes the sinks; SIGKILLed, it cannot report
        written = re.search(r"stopped after (\d+) frames", stderr)
        assert written, stderr[-3000:]
        assert len(list(frames.glob("*.png"))) == int(written[1]) > 0
        assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == int(written[1])


STOP_AT_ITERATION = 30


def _left_first_worker(rank: int, port: int, folder: str) -> None:
    """Rank 1 leaves at once, as a second Ctrl-C makes it; rank 0 was told to stop meanwhile."""
    os.environ["FIFO_DIFFUSION_PLUGINS"] = "gaussian,sinks"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        stop = StopRequest()

        class SignalArrives:
            @hookimpl
            def on_iteration(self, event) -> None:
                if event.iteration == STOP_AT_ITERATION:
                    if rank == 1:
                        raise KeyboardInterrupt
                    signal.raise_signal(signal.SIGTERM)  # sets the request; the run goes on to the next safe point

        plugins = default_plugins()
        plugins.register(SignalArrives())
        config = RunConfig(prompt="x", backbone="gaussian-ar1", window=4, partitions=2, sinks=[f"{folder}/frames/"])
        group = WindowGroup(rank=rank, world_size=2)
        with stop.on_signals():
            summary = generate(config, plugins=plugins, group=group, stop=stop)
        note = group.stopped_without_others or ""
        Path(f"{folder}/rank{rank}").write_text(f"{summary.interrupted} {summary.frames}\n{note}")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_a_rank_told_to_stop_whose_peer_left_first_stops_and_keeps_its_frames(tmp_path: Path) -> None:
    mp.spawn(_left_first_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    outcome, note = (tmp_path / "rank0").read_text().split("\n", 1)
    interrupted, frames = outcome.split()
    assert interrupted == "True"
    assert len(list((tmp_path / "frames").glob("*.png"))) == int(frames) > 0
    assert note.startswith("rank 0: stopped by a signal; rank 1 had already left"), note


def test_a_signal_repeated_within_a_second_is_the_same_request() -> None:
    """torchrun forwards SIGINT/SIGTERM to workers that the terminal or pkill already signalled:
    that copy must not turn the careful stop into an immediate KeyboardInterrupt."""
    stop = StopRequest()
    with stop.on_signals(), stop.deferring():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # the forwarded copy
            time.sleep(0.01)
        except KeyboardInterrupt:
            pytest.fail("a copy of the stop signal arriving at once raised KeyboardInterrupt instead of waiting for the safe point")
        assert stop.is_set()
        time.sleep(1.1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # a real second request: stop now
            time.sleep(0.5)
