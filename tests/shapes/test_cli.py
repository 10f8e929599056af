"""fifo-shapes through the command line into an MP4, read back and checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from fifo_shapes.checker import observe


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
