"""The Python API: frame iterator and running a configuration into sinks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fifo_core.api import FrameEvent, RunConfig, generate, iter_frames, load_backbone, make_sampler
from fifo_core.config import PromptTimeline, TimedPrompt
from fifo_core.errors import ConfigError


def test_iter_frames_yields_uint8_frames_one_at_a_time() -> None:
    frames = list(iter_frames(RunConfig(prompt="a red circle", backbone="gaussian-ar1", frames=12)))
    assert len(frames) == 12
    assert all(frame.shape == (64, 64, 3) and frame.dtype == np.uint8 for frame in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_unbounded_iteration_can_be_stopped_by_the_caller() -> None:
    frames = iter_frames(RunConfig(prompt="a red circle", backbone="gaussian-ar1"))
    taken = [next(frames) for _ in range(50)]
    assert len(taken) == 50


def test_generate_runs_into_sinks_and_reports_every_frame(tmp_path: Path) -> None:
    events: list[FrameEvent] = []
    summary = generate(
        RunConfig(prompt="a red circle", backbone="gaussian-ar1", frames=20, sinks=[f"{tmp_path}/frames/"]),
        on_frame=events.append,
    )
    assert summary.frames == 20 and not summary.interrupted and summary.error is None
    assert [event.index for event in events] == list(range(20))
    assert len(list((tmp_path / "frames").glob("*.png"))) == 20


def test_generate_without_sinks_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--sink"):
        generate(RunConfig(prompt="a red circle", backbone="gaussian-ar1", frames=2))


def test_backbone_loaded_once_can_serve_several_runs() -> None:
    backbone = load_backbone("gaussian-ar1", {"rho": 0.5})
    first = list(iter_frames(RunConfig(prompt="x", frames=3, seed=1), backbone=backbone))
    again = list(iter_frames(RunConfig(prompt="x", frames=3, seed=1), backbone=backbone))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_timeline_prompts_reach_the_latents() -> None:
    timeline = PromptTimeline(entries=(TimedPrompt(start=0, prompt="first"), TimedPrompt(start=5, prompt="second")))
    sampler = make_sampler(RunConfig(prompt=timeline, backbone="gaussian-ar1"))
    prompts = [clean.prompt for _, clean in zip(range(8), sampler.latents())]
    assert prompts == ["first"] * 5 + ["second"] * 3


def test_backbone_options_are_validated_with_the_choices_listed() -> None:
    with pytest.raises(ConfigError, match="rho"):
        load_backbone("gaussian-ar1", {"rho": 2.0})
    with pytest.raises(ConfigError, match="its options are"):
        load_backbone("gaussian-ar1", {"colour": "red"})
