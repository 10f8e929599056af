"""Issue #18 under torchrun: two gloo processes share the windows, rank 0 saves the state; both
workers killed with SIGKILL mid-video, the run resumed under torchrun gives the frames of an
uninterrupted single-process run, identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fifo_core.state import load_state

from fifo_core.api import RunConfig, generate

from distributed.test_lost_rank import worker_pid  # tests/ is on sys.path, as for helpers
from distributed.test_windows_over_ranks import free_port
from .helpers import environment, png_frames

FRAMES = 36
SETTINGS = '{"backbone": "gaussian-ar1", "window": 4, "partitions": 3, "seed": 8}'  # torchrun would take --n for its own


def torchrun(port: int, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(port), "-m", "fifo_core.cli", *arguments]  # fmt: skip


@pytest.mark.timeout(300)
def test_a_torchrun_run_killed_mid_video_resumes_exactly(tmp_path: Path) -> None:
    generate(RunConfig(prompt="a red circle", backbone="gaussian-ar1", window=4, partitions=3, seed=8, frames=FRAMES, sinks=[f"{tmp_path}/whole/"]))
    frames, state = tmp_path / "part", tmp_path / "state"
    (tmp_path / "run.json").write_text(SETTINGS)
    port = free_port()
    run = subprocess.Popen(
        torchrun(port, "generate", "a red circle", "--config", str(tmp_path / "run.json"), "--frames", str(FRAMES), "--sink", f"{frames}/", "--state", str(state), "--save-every", "5", "-q"),
        env=environment(), stderr=subprocess.PIPE, text=True,
    )
    try:
        import time

        deadline = time.monotonic() + 200
        while len(list(frames.glob("frame_*.png"))) < 12:
            assert run.poll() is None, run.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        workers = [worker_pid(port, rank) for rank in (0, 1)]
        for pid in workers:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
    assert len(list(frames.glob("frame_*.png"))) < FRAMES
    assert 0 < load_state(state).frames < FRAMES  # resumed from the middle of the video, not its start

    resumed = subprocess.run(torchrun(free_port(), "resume", str(state), "-q"), env=environment(), capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = png_frames(tmp_path / "whole"), png_frames(frames)
    assert len(got) == len(expected) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
