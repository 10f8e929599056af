"""The measures behind docs/results.md see what they should: a jump between frames, a shape that
stops or jumps, colours that drift off the palette, and the adjacent-frame correlation of a
process whose correlation is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fifo_core.rel_mse import adjacent_frame_correlation
from fifo_core.video_metrics import boundary_discontinuity, frame_changes, jumps
from fifo_shapes.video_scores import score_frames, world_frames
from fifo_shapes.world import Caption, clips_for, render


def world_video(caption: Caption, frames: int, seed: int) -> np.ndarray:
    """Frames ``'k 32 32 3'`` uint8 the world itself draws for ``caption``."""
    clip = render(clips_for(caption, 1, frames, torch.Generator().manual_seed(seed)))[0]  # '3 f h w'
    return ((clip.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


CAPTION = Caption("red", "square", "moving right", "blue")


def test_a_jump_between_two_pieces_stands_out_and_a_continuous_video_has_none() -> None:
    smooth = world_video(CAPTION, 24, seed=0)
    spliced = np.concatenate([smooth[:12], world_video(CAPTION, 12, seed=5)])
    assert frame_changes(smooth).shape == (23,)
    assert boundary_discontinuity(frame_changes(smooth), [12]).ratio == pytest.approx(1.0, abs=0.25)
    jump = boundary_discontinuity(frame_changes(spliced), [12])
    assert jump.boundaries == 1 and jump.ratio > 3.0, jump
    assert jumps(frame_changes(smooth)) == 0 and jumps(frame_changes(spliced)) == 1
    assert np.isnan(boundary_discontinuity(frame_changes(smooth), []).ratio)


def test_scores_of_the_worlds_own_frames_are_perfect_and_break_where_the_video_does() -> None:
    frames = world_video(CAPTION, 40, seed=1)
    clean = score_frames(frames, CAPTION)
    assert len(clean) == 40
    assert np.nanmean(clean.values["agrees"]) == 1.0 and np.nanmean(clean.values["exact_step"]) == 1.0
    assert np.nanmean(clean.values["speed"]) == pytest.approx(1.0) and np.nanmean(clean.values["off_palette"]) < 1.0
    # the same frames upscaled as the backbone decodes them give the same scores
    big = score_frames(frames.repeat(4, axis=1).repeat(4, axis=2), CAPTION)
    assert np.allclose(big.values["change"][1:], clean.values["change"][1:])

    stopped = frames.copy()
    stopped[20:] = frames[20]  # the shape stops half-way
    halted = score_frames(stopped, CAPTION)
    assert np.nanmean(halted.values["exact_step"][21:]) == 0.0 and np.nanmean(halted.values["speed"][21:]) == 0.0
    assert halted.over_windows(20)[0]["exact_step"] == 1.0 and halted.over_windows(20)[1]["motion"] < 0.2

    drifted = np.clip(frames.astype(int) + 40, 0, 255).astype(np.uint8)
    assert np.nanmean(score_frames(drifted, CAPTION).values["off_palette"]) > 20.0
    windows = clean.over_windows(16)
    assert [w["start"] for w in windows] == [0.0, 16.0]  # the short tail is dropped


def test_world_frames_reduce_decoded_frames_to_the_worlds_pixels() -> None:
    frames = world_video(CAPTION, 3, seed=2)
    assert np.array_equal(world_frames(frames.repeat(4, axis=1).repeat(4, axis=2)), frames)


def test_adjacent_frame_correlation_is_the_rho_of_an_ar1_process() -> None:
    generator = torch.Generator().manual_seed(0)
    rho, frames = 0.8, 8
    index = torch.arange(frames, dtype=torch.float64)
    factor = torch.linalg.cholesky(rho ** (index[:, None] - index[None, :]).abs())
    draws = (factor @ torch.randn(frames, 4096 * 4, generator=generator, dtype=torch.float64)).T.reshape(4096, 4, frames, 1, 1)
    clips = draws.permute(0, 1, 2, 3, 4) + 3.0  # an offset: the measure centres the values itself
    assert adjacent_frame_correlation(clips) == pytest.approx(rho, abs=0.02)
    still = torch.randn(64, 3, 1, 4, 4, generator=generator).expand(64, 3, 8, 4, 4)
    assert adjacent_frame_correlation(still) == pytest.approx(1.0)
