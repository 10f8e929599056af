"""The measuring parts of the GPU benchmarks, checked on the CPU: seconds per frame over whole
bursts (frames that come eight at a time were once timed as 0.000 s each), and the warm-up cost
of the queue starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    """A benchmark script as a module (by path: ``tests/adapters`` is also a package ``adapters``)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bursts = _script("adapters").bursts
steady_seconds_per_frame = _script("adapters").steady_seconds_per_frame
warm_up_rows = _script("warm_up_cost").warm_up_rows


def test_frames_in_bursts_are_timed_over_whole_bursts() -> None:
    # a latent every 2 s decodes to 8 frames handed out together
    stamps = [2.0 * latent + 1e-5 * frame for latent in range(1, 5) for frame in range(8)]
    assert bursts(stamps) == [7, 15, 23, 31]
    per_frame, frames = steady_seconds_per_frame(stamps)
    assert frames == 24
    assert per_frame == pytest.approx(6.0 / 24)


def test_one_frame_per_burst_is_timed_frame_by_frame() -> None:
    per_frame, frames = steady_seconds_per_frame([0.5 * k for k in range(10)])
    assert (per_frame, frames) == (pytest.approx(0.5), 9)


def test_a_single_burst_has_no_steady_state() -> None:
    per_frame, frames = steady_seconds_per_frame([1.0, 1.0, 1.0])
    assert frames == 0 and per_frame != per_frame  # nan


def test_the_ramp_start_warms_up_for_less_than_the_clip_start() -> None:
    # VideoCrafter2's layout, f = 16, n = 4, lookahead: 16 rows per steady iteration
    ramp, clip = warm_up_rows(16, 4, True, "ramp"), warm_up_rows(16, 4, True, "clip")
    assert ramp["levels"] == clip["levels"] == 64 and ramp["steady_rows"] == 16
    assert ramp["iterations"] == 64 and ramp["rows"] == 576  # windows join the ramp one by one
    assert clip["rows"] == 128 + 48 * 16 + 16  # 64 clip steps of 2 rows, 48 discarded iterations, the first frame's


def test_a_chunked_decoder_is_timed_over_its_whole_last_chunk() -> None:
    # tiny LTX-Video decodes 4 latents (32 frames) at a time; 33 frames once cut the second
    # chunk after 8 of its 32 frames, and its time was divided by 8
    import torch

    adapters = _script("adapters")
    backbone = adapters.build("ltx-video", True, torch.device("cpu"))
    with torch.inference_mode():
        result = adapters.measure(backbone, "ltx-video", 33, True, None, lookahead=False, start="continue")
    assert result["frames"] == 57  # 25 frames in the first chunk, then a whole one of 32
    assert result["timed_frames"] == 32
    assert result["start"] == "continue" and 0 < result["denoise_share"] <= 1
