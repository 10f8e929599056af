"""The released-size Open-Sora Plan v1.1 65x512x512 with random weights, end to end through the CLI
(opt in: --run-slow).

Writes a folder in the released layout (1.06 B transformer parameters and the 247 M CausalVAE, float16
files as released: 2.6 GB) and a one-layer T5 of the released width, then runs ``fifo-diffusion
generate --backbone opensora-plan-v1.1 --model FOLDER`` at 32x32 pixels into an MP4. Needs about
10 GB of memory and several minutes on 2 CPU cores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from fifo_opensora.random_models import write_released_layout


@pytest.mark.slow
def test_full_size_released_layout_runs_through_the_cli(tmp_path: Path) -> None:
    folder = write_released_layout(tmp_path / "Open-Sora-Plan-v1.1.0", "real", "65x512x512")
    video = tmp_path / "full-size.mp4"
    result = subprocess.run(
        [
            sys.executable, "-m", "fifo_core.cli", "generate", "a red circle moving left",
            "--backbone", "opensora-plan-v1.1", "--model", str(folder), "--option", f"text_encoder={folder / 't5'}",
            "--option", "device=cpu", "--option", "decode_chunk=1", "--option", "decode_context=1",
            "--height", "32", "--width", "32", "--n", "1", "--no-lookahead", "--guidance", "1", "--frames", "5",
            "--sink", str(video), "-q",
        ],
        capture_output=True, text=True, timeout=3000,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 5
