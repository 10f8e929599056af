"""Issue #13, items 11 and 13: ``generate-many`` refuses patterns that would put every video in
one file or that cannot be formatted, fails when a sink failed, creates the folder of a file
target (as the PNG sink always did), prints no ``[rank 0]`` outside torchrun, and a boolean is
not a frame count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from fifo_core.config import RunConfig
from fifo_core.errors import ConfigError

FIFO = [sys.executable, "-m", "fifo_core.cli"]


def generate_many(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\na green triangle\n")
    return subprocess.run(
        [*FIFO, "generate-many", str(prompts), "--backbone", "gaussian-ar1", "--frames", "3", "-q", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


def created(tmp_path: Path) -> set[str]:
    return {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")} - {"prompts.txt"}


@pytest.mark.parametrize("pattern", ["v/{{index}}.mp4", "v/{index", "v/{name}.mp4", "v/{index:zz}.mp4", "v/{}.mp4", "v/{0}.mp4"])
def test_patterns_that_cannot_tell_videos_apart_are_refused_in_one_line(tmp_path: Path, pattern: str) -> None:
    result = generate_many(tmp_path, "--sink", pattern)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "{index" in result.stderr
    assert created(tmp_path) == set()


def test_the_readme_example_creates_its_folder_and_says_nothing_of_ranks(tmp_path: Path) -> None:
    result = generate_many(tmp_path, "--sink", "videos/{index:03d}.mp4")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "videos").iterdir()) == ["000.mp4", "001.mp4", "002.mp4"]
    assert "[rank" not in result.stderr


@pytest.mark.timeout(120)
def test_a_sink_that_failed_makes_the_exit_status_1(tmp_path: Path) -> None:
    # nothing listens on port 1 of the loopback, so every stream fails at once
    result = generate_many(tmp_path, "--sink", "v/{index}.mp4", "--sink", "rtmp://127.0.0.1:1/live/{index}")
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stderr.strip().splitlines()[-1]
    for index in range(3):
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "v" / f"{index}.mp4"))
        assert frames == 3


@pytest.mark.parametrize("field", ["frames", "partitions", "window", "seed", "height", "max_batch"])
def test_true_is_not_a_count(field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RunConfig.parse({"prompt": "x", field: True})
    assert raised.value.field == field and "true" in str(raised.value).lower()
