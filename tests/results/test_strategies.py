"""The long-video baselines (fifo_core.baselines) do what they claim: FreeNoise's noise rescheduling
reuses the first window's noise, shuffled; window fusion averages the windows over each frame;
autoregressive chunks reproduce their known frames and impose them, noised to every level, on
the model; independent clips join with a cut that FIFO does not have; only FreeNoise's memory
grows with the video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fifo_core.baselines import (
    STRATEGIES,
    ChunkedAutoregressive,
    fused_prediction,
    make_strategy,
    rescheduled_noise,
    window_starts,
)
from fifo_core.config import RunConfig
from fifo_core.errors import ConfigError
from fifo_core.noise import NoiseStreams
from fifo_core.video_metrics import boundary_discontinuity, frame_changes
from fifo_gaussian.ar1 import GaussianAR1Backbone


class RecordingGaussian(GaussianAR1Backbone):
    """The Gaussian backbone, keeping every call's latents ``'b c f h w'`` and timesteps ``'b f'``."""

    def __init__(self) -> None:
        super().__init__(rho=0.9, denoiser="per-frame", channels=1, downsample=8)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def predict(self, latents, timesteps, conditioning):
        self.calls.append((latents.clone(), timesteps.clone()))
        return super().predict(latents, timesteps, conditioning)


def gaussian_config(side: int = 64, seed: int = 0) -> RunConfig:
    # f = 4, n = 2: S = 8 levels; latents 1 x side/8 x side/8
    return RunConfig(prompt="anything", backbone="gaussian", seed=seed, window=4, partitions=2, height=side, width=side)


def test_noise_rescheduling_reuses_the_first_windows_noise_in_shuffled_order() -> None:
    noise = NoiseStreams(3, (1, 2, 2), torch.device("cpu"))
    window, frames = 4, 18
    video = rescheduled_noise(noise, frames, window)
    first = torch.stack([noise.frame(latent) for latent in range(window)])
    assert video.shape == (frames, 1, 2, 2)
    assert torch.equal(video[:window], first)  # the first window: its own draws, FIFO's
    orders = []
    for start in range(window, frames, window):
        block = video[start : start + window]
        # every later latent is one of the first window's noises, each at most once per block
        matches = [[j for j in range(window) if torch.equal(latent, first[j])] for latent in block]
        assert all(len(found) == 1 for found in matches)
        order = [found[0] for found in matches]
        assert len(set(order)) == len(order)
        orders.append(order)
    assert any(order != list(range(len(order))) for order in orders)  # shuffled, not copied
    assert len({tuple(order) for order in orders[:-1]}) > 1  # a new order per block
    assert torch.equal(rescheduled_noise(noise, frames, window), video)  # seeded
    assert not torch.equal(rescheduled_noise(NoiseStreams(4, (1, 2, 2), torch.device("cpu")), frames, window), video)


def test_window_fusion_averages_the_windows_that_hold_each_frame() -> None:
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # the last window ends at the last latent
    with pytest.raises(ValueError, match="at least one window"):
        window_starts(3, 4, 1)
    latents = torch.randn(11, 1, 2, 2)

    def start_of_window(clips, starts):  # every frame of a window predicts the window's start
        return torch.stack([torch.full(clips.shape[1:], float(start)) for start in starts])

    fused = fused_prediction(start_of_window, latents, window=4, stride=2, windows_per_call=2)
    expected = [0, 0, 1, 1, 3, 3, 5, 17 / 3, 6.5, 6.5, 7]  # frame 7 sits in the windows starting at 4, 6 and 7
    assert fused[:, 0, 0, 0].tolist() == pytest.approx(expected)
    doubled = fused_prediction(lambda clips, starts: 2 * clips, latents, window=4, stride=3)
    assert torch.allclose(doubled, 2 * latents)


def test_autoregressive_chunks_reproduce_their_known_frames_and_impose_them_at_every_level() -> None:
    backbone = RecordingGaussian()
    strategy = make_strategy("autoregressive", gaussian_config(), backbone=backbone)
    assert isinstance(strategy, ChunkedAutoregressive) and strategy.known == 2
    video = torch.stack(list(strategy.latents(10)))  # 4 frames, then chunks of 2 new frames
    assert video.shape == (10, 1, 8, 8) and strategy.boundaries(10) == [4, 6, 8]

    backbone.calls.clear()
    known = video[2:4]
    chunk = strategy.chunk(known, piece=1, first=4)
    assert torch.equal(chunk[:2], known)  # exactly, not approximately
    grid = strategy.denoiser.grid
    assert len(backbone.calls) == grid.num_levels
    for latents, timesteps in backbone.calls:
        level = int((grid.timesteps == float(timesteps[0, 0])).nonzero())
        seen = latents[0, :, :2].permute(1, 0, 2, 3)  # the known frames as the model saw them
        # a_l x0 + b_l z: what is left after the signal is noise of the level's size
        residual = (seen - grid.signal[level] * known) / grid.noise[level]
        assert 0.75 < float(residual.pow(2).mean().sqrt()) < 1.25, level
    # the known frames come through more clearly as the levels fall: hidden at the top, plain at the bottom
    def likeness(call: int) -> float:
        seen = backbone.calls[call][0][0, :, :2].permute(1, 0, 2, 3)
        return float(torch.corrcoef(torch.stack([seen.flatten(), known.flatten()]))[0, 1])

    assert likeness(0) < 0.4 and likeness(-1) > 0.85, (likeness(0), likeness(-1))
    assert torch.equal(chunk, strategy.chunk(known, piece=1, first=4))  # seeded


def test_independent_clips_are_cut_where_autoregressive_chunks_and_fifo_continue() -> None:
    """On the AR(1) backbone (rho 0.9) the correlation of latent values across a seam is about 0
    for independent clips; inpainting carries the video on, though only partly (0.50 here with
    S = 8: replacing the known frames conditions the new ones less than the process's 0.9)."""
    backbone = GaussianAR1Backbone(rho=0.9, denoiser="per-frame", channels=1, downsample=8)
    config = gaussian_config(side=128)

    def across(video: torch.Tensor, seams: list[int]) -> float:
        before = torch.cat([video[seam - 1].flatten() for seam in seams])
        after = torch.cat([video[seam].flatten() for seam in seams])
        return float(torch.corrcoef(torch.stack([before, after]))[0, 1])

    independent = make_strategy("independent", config, backbone=backbone)
    autoregressive = make_strategy("autoregressive", config, backbone=backbone)
    cut = across(torch.stack(list(independent.latents(24))), independent.boundaries(24))
    joined = across(torch.stack(list(autoregressive.latents(24))), autoregressive.boundaries(24))
    assert abs(cut) < 0.15 and joined > 0.35, (cut, joined)


def test_only_freenoise_holds_more_latents_for_a_longer_video() -> None:
    backbone = GaussianAR1Backbone(rho=0.9, denoiser="per-frame", channels=1, downsample=8)
    peaks = {}
    for name in STRATEGIES:
        for frames in (8, 16):
            strategy = make_strategy(name, gaussian_config(side=16), backbone=backbone)
            assert len(list(strategy.latents(frames))) == frames
            peaks[name, frames] = strategy.peak_bytes
    assert peaks["freenoise", 16] == 2 * peaks["freenoise", 8]
    for name in ("independent", "autoregressive"):
        assert 0 < peaks[name, 16] == peaks[name, 8]


def test_an_unknown_strategy_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="independent, autoregressive, freenoise"):
        make_strategy("chunked", gaussian_config(), backbone=GaussianAR1Backbone())


def test_on_the_default_model_independent_clips_jump_at_their_seams_and_fifo_does_not() -> None:
    from fifo_shapes.agreement import sampler_for
    from fifo_shapes.backbone import ShapesBackbone
    from fifo_shapes.video_scores import world_frames

    backbone = ShapesBackbone()
    prompt = "a red square moving right on a black background"
    fifo = world_frames(sampler_for(backbone, prompt, seed=1).frames(24))
    independent = make_strategy("independent", RunConfig(prompt=prompt, backbone="fifo-shapes", seed=1), backbone=backbone)
    clips = world_frames(independent.frames(24))
    seams = [8, 16]
    fifo_ratio = boundary_discontinuity(frame_changes(fifo), seams).ratio
    clips_ratio = boundary_discontinuity(frame_changes(clips), seams).ratio
    assert clips_ratio > 2.0 and fifo_ratio < 1.5 and clips_ratio > 2 * fifo_ratio, (clips_ratio, fifo_ratio)
    assert np.isfinite(fifo_ratio)
