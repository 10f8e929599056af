"""fifo-shapes through the command line into an MP4, read back and checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from fifo_shapes.checker import Agreement, check_frames, observe
from fifo_shapes.world import Caption


def test_generate_with_fifo_shapes_writes_the_named_colour_and_shape(tmp_path: Path) -> None:
    video = tmp_path / "shapes.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "a red square moving left on a blue background",
         "--backbone", "fifo-shapes", "--frames", "24", "--sink", str(video), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3) for raw in reader]
    assert len(frames) == 24 and (width, height) == (128, 128)
    seen = [observe(frame) for frame in frames]
    # The video codec blurs colours a little; the checker reads through that.
    assert sum(o.background == "blue" for o in seen) >= 22
    assert sum(o.colour == "red" for o in seen) >= 18


def test_the_readmes_first_command_uses_fifo_shapes_and_follows_the_prompt(tmp_path: Path) -> None:
    """`fifo-diffusion generate "a red circle moving left" ... --sink out.mp4` with no backbone
    named: the default model draws a red circle that moves left, read back from the MP4."""
    video = tmp_path / "out.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "a red circle moving left", "--frames", "48", "--sink", str(video), "-q"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    reader = imageio_ffmpeg.read_frames(str(video))
    next(reader)
    frames = [np.frombuffer(raw, dtype=np.uint8).reshape(128, 128, 3) for raw in reader]
    agreement = Agreement()
    agreement.add(check_frames(frames, Caption.parse("a red circle moving left")))
    assert agreement.frames == 48
    assert agreement.fraction("colour") >= 0.95 and agreement.fraction("motion") >= 0.95, agreement.describe()
    # With seed 0, 44 of 48 frames agreed when the weights shipped: on the others the circle is
    # drawn square enough that the square template fits it as well (the checker's tie-break).
    assert agreement.fraction() >= 0.85, agreement.describe()


def test_words_outside_the_grammar_are_named_in_one_warning_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "a red dog running left", "--frames", "2", "--sink", str(tmp_path / "dog.mp4"), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "does not know" in line]
    assert warnings == [
        "warning: fifo-shapes does not know the words 'dog', 'running' in 'a red dog running left'; it was trained on "
        "'a COLOUR SHAPE MOTION [on a BACKGROUND background]' (docs/default-model.md lists the words)"
    ], result.stderr
    assert "UserWarning" not in result.stderr
