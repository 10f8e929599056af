"""``fifo-diffusion generate --backbone opensora-plan-v1.1 --model FOLDER`` into an MP4, with the odd
window f=17 of the released 65x512x512 model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg


def test_generate_writes_an_mp4_from_a_released_layout_folder(tmp_path: Path, released_folder: Path) -> None:
    video = tmp_path / "opensora.mp4"
    result = subprocess.run(
        [
            sys.executable, "-m", "fifo_core.cli", "generate", "a red circle moving left",
            "--backbone", "opensora-plan-v1.1", "--model", str(released_folder),
            "--option", f"text_encoder={released_folder / 't5'}", "--option", "device=cpu",
            "--height", "32", "--width", "32", "--n", "2", "--guidance", "1", "--frames", "9", "--sink", str(video), "-q",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 9
    assert "wrote 9 frames" in result.stderr
