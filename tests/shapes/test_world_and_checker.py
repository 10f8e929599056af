"""The shapes world and its checker: the checker must agree with every frame the world draws,
and must catch a frame that shows something else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fifo_shapes import world
from fifo_shapes.checker import Agreement, check_frames, evaluation_prompts
from fifo_shapes.world import Caption


def frames_of(video: torch.Tensor, upscale: int = 4) -> list[np.ndarray]:
    pixels = ((video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()
    return [np.repeat(np.repeat(frame, upscale, 0), upscale, 1) for frame in pixels]


def test_prompts_round_trip_through_the_grammar() -> None:
    for caption in world.all_captions() + world.all_captions(with_background=False):
        assert Caption.parse(caption.text) == caption
    assert len(world.all_captions()) == 330


@pytest.mark.parametrize("prompt", ["a dog running", "a blue circle moving left on a blue background", "a red hexagon bouncing"])
def test_prompts_outside_the_grammar_are_refused_with_a_hint(prompt: str) -> None:
    with pytest.raises(ValueError, match="a red circle|invisible|not in the shapes grammar"):
        Caption.parse(prompt)


def test_motions_continue_indefinitely() -> None:
    generator = torch.Generator().manual_seed(1)
    clips = world.random_clips(64, 300, generator)
    steps = (clips.positions[:, 1:] - clips.positions[:, :-1] + 16) % 32 - 16
    assert bool((steps.abs() <= 1).all())  # one pixel per frame on the torus, for ever
    bouncing = clips.motion == world.MOTIONS.index("bouncing")
    inside = clips.positions[bouncing]
    assert bool(((inside >= world.RADIUS) & (inside <= world.SIZE - 1 - world.RADIUS)).all())
    assert bool((steps[bouncing].abs() == 1).all())


def test_checker_agrees_with_every_frame_the_world_draws() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = world.random_clips(60, 24, generator)
    video = world.render(clips)
    agreement = Agreement()
    for row in range(60):
        frames = frames_of(video[row])
        agreement.add(check_frames(frames, clips.caption(row)))
        agreement.add(check_frames(frames, clips.caption(row, with_background=False)))
    assert agreement.fraction() == 1.0, agreement.describe()


def test_checker_catches_the_wrong_colour_shape_motion_and_background() -> None:
    caption = Caption("red", "circle", "moving left", "blue")
    clips = world.clips_for(caption, 1, 24, torch.Generator().manual_seed(0))
    frames = frames_of(world.render(clips)[0])
    for wrong in (
        Caption("green", "circle", "moving left", "blue"),
        Caption("red", "square", "moving left", "blue"),
        Caption("red", "circle", "moving right", "blue"),
        Caption("red", "circle", "bouncing", "blue"),
        Caption("red", "circle", "moving left", "black"),
    ):
        assert not any(verdict.agrees for verdict in check_frames(frames, wrong)), wrong
    assert not any(v.motion for v in check_frames(frames[::-1], caption))  # played backwards


def test_evaluation_prompts_cover_every_motion_and_shape() -> None:
    prompts = evaluation_prompts(20)
    assert len(set(prompts)) == 20
    assert {p.motion for p in prompts} == set(world.MOTIONS)
    assert {p.shape for p in prompts} == set(world.SHAPES)
