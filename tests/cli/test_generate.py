"""The ``fifo-diffusion`` command end to end, with the Gaussian backbone and the real sinks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest
from click.testing import CliRunner

from fifo_core.cli import main
from fifo_gaussian.ar1 import DEFAULTS

FIFO = [sys.executable, "-m", "fifo_core.cli"]


# These tests are about the command line and the sinks, so they run the fast Gaussian backbone
# rather than the default model (tests/shapes/test_cli.py runs the default).
GAUSSIAN = ["--backbone", "gaussian-ar1"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    backbone = GAUSSIAN if args[0].startswith("generate") and "--backbone" not in args else []
    return subprocess.run([*FIFO, *args, *backbone], capture_output=True, text=True, timeout=120)


def frames_in(path: Path) -> int:
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    return frames


def mp4_fps(path: Path) -> float:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    return float(meta["fps"])


def test_generate_writes_exactly_the_requested_frames_at_the_requested_fps(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    result = run_cli("generate", "a red circle moving left", "--frames", "200", "--fps", "12", "--sink", str(video))
    assert result.returncode == 0, result.stderr
    assert frames_in(video) == 200
    assert mp4_fps(video) == pytest.approx(12.0)
    assert "200/200" in result.stderr  # the progress bar reached its total


def test_sink_may_be_repeated_and_folders_get_numbered_pngs(tmp_path: Path) -> None:
    video, folder = tmp_path / "out.mp4", tmp_path / "frames"
    result = run_cli("generate", "a red circle moving left", "--frames", "200", "--sink", str(video), "--sink", f"{folder}/", "-q")
    assert result.returncode == 0, result.stderr
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 200
    assert frames_in(video) == 200


def test_config_file_with_flags_overriding_it(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(f'prompt = "a red circle"\nframes = 50\nsinks = ["{tmp_path / "a.mp4"}"]\nseed = 3\n')
    result = run_cli("generate", "--config", str(config), "--frames", "30", "-q")
    assert result.returncode == 0, result.stderr
    assert frames_in(tmp_path / "a.mp4") == 30


def interrupt_unbounded_run(tmp_path: Path, signum: int) -> tuple[int, str]:
    video = tmp_path / "endless.mp4"
    process = subprocess.Popen([*FIFO, "generate", "a red circle", *GAUSSIAN, "--sink", str(video), "-q"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not video.exists() or video.stat().st_size < 20_000):
            time.sleep(0.2)
        assert video.exists(), "the run never started writing"
        process.send_signal(signum)
        _out, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    made = int(stderr.split("stopped after ")[1].split()[0])
    return made, str(video)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_an_unbounded_run_leaves_a_playable_mp4_with_every_frame(tmp_path: Path, signum: int) -> None:
    made, video = interrupt_unbounded_run(tmp_path, signum)
    assert made > 0
    assert frames_in(Path(video)) == made


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--backbone", "no-such-model"], "backbone"),
        (["--f", "1"], "window"),
        (["--frames", "-3"], "frames"),
        (["--eta", "0.5", "--sampler", "ddpm"], "eta"),
    ],
)
def test_bad_configuration_is_one_line_exit_2_and_no_output(tmp_path: Path, args: list[str], field: str) -> None:
    video = tmp_path / "out.mp4"
    result = run_cli("generate", "a red circle", "--frames", "5", "--sink", str(video), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}:")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    result = run_cli("generate", "a red circle", "--frames", "5", "--sink", str(tmp_path / "ok.mp4"), "--sink", str(not_a_folder / "out.mp4"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: sinks:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_backbones_lists_defaults_and_sinks_lists_targets() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["backbones", "--json"])
    assert listing.exit_code == 0
    backbones = json.loads(listing.stdout)
    assert backbones["gaussian-ar1"]["defaults"]["window"] == DEFAULTS.window
    sinks = runner.invoke(main, ["sinks"])
    assert sinks.exit_code == 0
    assert {"mp4", "images", "rtmp"} <= {line.split()[0] for line in sinks.stdout.splitlines()}


def test_schema_is_the_run_configuration_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.stdout)
    assert {"prompt", "frames", "partitions", "window", "lookahead", "sinks"} <= set(schema["properties"])


def test_prompt_timeline_file_through_the_timeline_plugin(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("0: a red circle moving left\n# a comment\n20: a blue square moving right\n")
    result = run_cli("generate", f"@{story}", "--frames", "30", "--sink", str(tmp_path / "s.mp4"), "-q")
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("a prompt without a frame\n")
    result = run_cli("generate", f"@{bad}", "--frames", "3", "--sink", str(tmp_path / "t.mp4"))
    assert result.returncode == 2 and "line 1" in result.stderr
