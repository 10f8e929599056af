"""Issue #13, item 14: under torchrun, a rank that is killed or stopped ends the run within the
collective timeout, and the survivor names the lost rank in one line instead of gloo's traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_windows_over_ranks import free_port


def worker_pid(port: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` in the torchrun group on ``port`` (read from /proc)."""
    wanted = {f"RANK={rank}".encode(), f"MASTER_PORT={port}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ:
            return int(entry.name)
    return None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stopped"])
def test_a_lost_rank_is_named_and_the_run_ends_within_the_timeout(tmp_path: Path, signum: int) -> None:
    env = dict(os.environ, FIFO_DIFFUSION_PLUGINS="gaussian,sinks", OMP_NUM_THREADS="1")
    frames = tmp_path / "frames"
    port = free_port()
    torchrun = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(port), "-m", "fifo_core.cli", "generate", "a red circle", "--backbone", "gaussian-ar1",
         "--collective-timeout", "5", "--sink", f"{frames}/", "-q"],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    victim = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list(frames.glob("*.png"))) < 5:
            time.sleep(0.2)
        victim = worker_pid(port, 1)
        assert victim is not None, "rank 1 not found"
        os.kill(victim, signum)
        lost_at = time.monotonic()
        deadline = lost_at + 60
        stderr_lines = []
        for line in torchrun.stderr:
            stderr_lines.append(line)
            if "lost rank" in line or time.monotonic() > deadline:
                break
        took = time.monotonic() - lost_at
    finally:
        if victim is not None and signum == signal.SIGSTOP:
            os.kill(victim, signal.SIGKILL)
        torchrun.kill()
        torchrun.wait()
    stderr = "".join(stderr_lines)
    assert "rank 0: lost rank 1" in stderr, stderr[-3000:]
    assert took < 30, f"the survivor took {took:.0f}s to notice"
