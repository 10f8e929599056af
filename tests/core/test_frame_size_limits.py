"""Issue #13, item 4: sizes no backbone can take are refused at once, and a run whose tensors
alone would not fit in memory is refused before anything is allocated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fifo_core.memory
from fifo_core.api import RunConfig, generate, make_sampler
from fifo_core.errors import ConfigError

FIFO = [sys.executable, "-m", "fifo_core.cli", "generate", "a red circle", "--frames", "1", "-q"]


@pytest.mark.parametrize("flags", [["--height", "100000"], ["--height", "100000", "--width", "100000"], ["--width", "20000"]])
@pytest.mark.timeout(60)
def test_huge_sides_are_refused_in_one_line_before_anything_is_made(tmp_path: Path, flags: list[str]) -> None:
    video = tmp_path / "out.mp4"
    result = subprocess.run([*FIFO, *flags, "--sink", str(video)], capture_output=True, text=True, timeout=50)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert not video.exists()


@pytest.mark.timeout(60)
def test_a_size_the_default_backbone_cannot_take_is_refused(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    result = subprocess.run([*FIFO, "--height", "256", "--width", "128", "--sink", str(video)], capture_output=True, text=True, timeout=50)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "square" in result.stderr


def test_a_run_too_large_for_memory_is_refused_with_the_estimate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fifo_core.memory, "available_memory_bytes", lambda device: 1_000_000)
    config = RunConfig(prompt="x", backbone="gaussian-ar1", height=1024, width=1024, frames=1, sinks=[str(tmp_path / "out.mp4")])
    for attempt in (lambda: make_sampler(config), lambda: generate(config)):
        with pytest.raises(ConfigError) as raised:
            attempt()
        message = str(raised.value)
        assert "memory" in message and "MB" in message and "--height" in message
    assert not (tmp_path / "out.mp4").exists()


def test_an_ordinary_run_fits() -> None:
    make_sampler(RunConfig(prompt="x", backbone="gaussian-ar1", frames=1))
