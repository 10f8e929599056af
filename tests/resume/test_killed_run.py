"""Issue #18: a run killed with SIGKILL mid-video (no chance to save anything at the end),
resumed from its last periodic state, gives the uninterrupted video: PNG frames identical, the
MP4 with every frame once (compared within codec tolerance), for the Gaussian and fifo-shapes
backbones on the CPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from fifo_core.state import STATE_FILE, load_state

from .helpers import CLI, environment, kill_when, mp4_frames, png_frames, wait_until_gone

FRAMES = 30


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "run",
    [
        ["a red circle", "--backbone", "gaussian-ar1", "--f", "4", "--n", "2", "--seed", "4"],
        ["a green triangle moving right on a blue background", "--backbone", "fifo-shapes", "--seed", "4"],
    ],
    ids=["gaussian", "shapes"],
)
def test_a_run_killed_mid_video_resumes_to_the_uninterrupted_video(tmp_path: Path, run: list[str]) -> None:
    env = environment()
    whole = subprocess.run(
        [*CLI, "generate", *run, "--frames", str(FRAMES), "--sink", f"{tmp_path}/whole/", "--sink", f"{tmp_path}/whole.mp4", "-q"],
        env=env, capture_output=True, text=True, timeout=200,
    )
    assert whole.returncode == 0, whole.stderr

    video, frames, state = tmp_path / "part.mp4", tmp_path / "part", tmp_path / "state"
    killed = subprocess.Popen(
        [*CLI, "generate", *run, "--frames", str(FRAMES), "--sink", f"{frames}/", "--sink", str(video), "--state", str(state),
         "--save-every", "5", "-q"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    kill_when(killed, lambda: len(list(frames.glob("frame_*.png"))) >= 12)
    wait_until_gone(str(video))  # ffmpeg, in a session of its own, finishes the file once its input ends
    assert (state / STATE_FILE).is_file()
    assert len(list(frames.glob("frame_*.png"))) < FRAMES
    assert 0 < load_state(state).frames < FRAMES  # resumed from the middle of the video, not its start

    resumed = subprocess.run([*CLI, "resume", str(state), "-q"], env=env, capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr

    expected, got = png_frames(tmp_path / "whole"), png_frames(frames)
    assert len(got) == len(expected) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))

    expected_video, got_video = mp4_frames(tmp_path / "whole.mp4"), mp4_frames(video)
    assert len(got_video) == len(expected_video) == FRAMES
    # each frame matches its own frame of the uninterrupted video far better than a neighbour does,
    # so a frame lost or repeated at the join would show
    errors = [mean_abs_error(a, b) for a, b in zip(got_video, expected_video)]
    neighbours = [mean_abs_error(a, b) for a, b in zip(expected[1:], expected[:-1])]
    assert max(errors) < 4, errors
    assert max(errors) < np.median(neighbours), (errors, neighbours)
