"""Issue #18: a stopped run resumed from its saved state makes exactly the frames (and latents)
an uninterrupted run makes: with the Gaussian and fifo-shapes backbones, with the overlapping
decoder, and with a decoder that keeps latents between calls."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import RunConfig, StopRequest, generate, make_sampler, resume
from fifo_core.plugins import default_plugins
from fifo_core.state import load_state

from .helpers import FakeBackbones, png_frames

FRAMES = 30


def stop_at(stop: StopRequest, frame: int):
    def on_frame(event) -> None:
        if event.index == frame:
            stop.set()

    return on_frame


def interrupted_then_resumed(config: RunConfig, tmp_path: Path, stop_frame: int, plugins=None) -> tuple[list[np.ndarray], Path]:
    state = tmp_path / "state"
    stop = StopRequest()
    first = generate(config, plugins=plugins, stop=stop, on_frame=stop_at(stop, stop_frame), state_dir=state, save_every=4)
    assert first.interrupted and first.frames < FRAMES
    second = resume(state, frames=FRAMES, plugins=plugins)
    assert not second.interrupted and first.frames + second.frames == FRAMES
    return png_frames(Path(config.sinks[0])), state


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "settings",
    [
        {"backbone": "gaussian-ar1", "window": 4, "partitions": 2, "sampler": "ddpm"},
        {"backbone": "gaussian-ar1", "window": 4, "partitions": 2, "start": "clip", "overlap_decode": True},
        {"backbone": "fifo-shapes", "prompt": "a blue square moving right on a yellow background", "overlap_decode": True},
    ],
    ids=["gaussian-ddpm", "gaussian-clip-start-overlap", "shapes-overlap"],
)
def test_frames_after_a_resume_equal_those_of_an_uninterrupted_run(tmp_path: Path, settings: dict) -> None:
    settings = {"prompt": "a red circle moving left", "seed": 3, "frames": FRAMES} | settings
    whole = RunConfig(**settings, sinks=[f"{tmp_path}/whole/"])
    assert generate(whole).frames == FRAMES
    resumed, state = interrupted_then_resumed(RunConfig(**settings, sinks=[f"{tmp_path}/parts/"]), tmp_path, stop_frame=11)
    expected = png_frames(tmp_path / "whole")
    assert len(resumed) == len(expected) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(resumed, expected))

    # the latents too, bit for bit: the saved queue, resumed, against the uninterrupted loop
    saved = load_state(state)
    assert saved.frames == FRAMES and len(saved.pending) == (1 if settings.get("overlap_decode") else 0)  # the decode in flight
    midway = state.parent / "midway"
    stop = StopRequest()
    generate(RunConfig(**settings, sinks=[f"{tmp_path}/midway-frames/"]), stop=stop, on_frame=stop_at(stop, 7), state_dir=midway)
    at = load_state(midway)
    config = RunConfig(**settings)
    made = at.frames + len(at.pending)  # one latent per frame: the latents handed out so far
    uninterrupted = [clean.latent for clean in islice(make_sampler(config).latents(), made + 5)][made:]
    continued = [clean.latent for clean in islice(make_sampler(config).latents(at.position), 5)]
    assert all(torch.equal(a, b) for a, b in zip(continued, uninterrupted))


@pytest.mark.timeout(60)
def test_a_decoder_holding_latents_between_calls_resumes_exactly(tmp_path: Path) -> None:
    plugins = default_plugins()
    plugins.register(FakeBackbones())
    settings = {"prompt": "x", "backbone": "fake-temporal", "seed": 1, "frames": FRAMES}
    generate(RunConfig(**settings, sinks=[f"{tmp_path}/whole/"]), plugins=plugins)
    # stopped at frame 10: in the middle of a latent's 3 frames, with latents held for context
    resumed, state = interrupted_then_resumed(RunConfig(**settings, sinks=[f"{tmp_path}/parts/"]), tmp_path, stop_frame=10, plugins=plugins)
    expected = png_frames(tmp_path / "whole")
    assert len(resumed) == len(expected) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(resumed, expected))


def test_a_resumed_run_can_be_made_longer(tmp_path: Path) -> None:
    settings = {"prompt": "x", "backbone": "gaussian-ar1", "window": 4, "partitions": 2, "seed": 2}
    generate(RunConfig(**settings, frames=20, sinks=[f"{tmp_path}/whole/"]))
    generate(RunConfig(**settings, frames=12, sinks=[f"{tmp_path}/parts/"]), state_dir=tmp_path / "state")
    resume(tmp_path / "state", frames=20)
    assert all(np.array_equal(a, b) for a, b in zip(png_frames(tmp_path / "parts"), png_frames(tmp_path / "whole")))
    assert len(png_frames(tmp_path / "parts")) == 20
