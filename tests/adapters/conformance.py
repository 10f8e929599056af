"""Checks every diffusers adapter passes, as a mixin: a test class sets ``backbone`` (a fixture)
and ``video_size`` and inherits these tests."""

from __future__ import annotations

import numpy as np
import torch

from fifo_core.backbone import Backbone, FrameDecoder


class AdapterConformance:
    video_size: tuple[int, int]  # (height, width) small enough for the tiny model
    window: int = 4

    def _inputs(self, backbone, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        shape = backbone.latent_shape(*self.video_size)
        latents = torch.randn(batch, shape[0], self.window, *shape[1:], generator=generator)
        grid = backbone.schedule.grid(max(8, self.window + batch + 1)).timesteps.float()
        timesteps = torch.stack([grid[1 + row : 1 + row + self.window] for row in range(batch)])
        return latents, timesteps

    def test_implements_the_backbone_protocol(self, backbone) -> None:
        assert isinstance(backbone, Backbone)
        assert isinstance(backbone.frame_decoder(), FrameDecoder)

    def test_predict_keeps_the_shape_and_is_deterministic(self, backbone) -> None:
        latents, timesteps = self._inputs(backbone)
        conditioning = [backbone.encode_prompt("a red circle"), backbone.encode_prompt("a blue square")]
        first = backbone.predict(latents, timesteps, conditioning)
        again = backbone.predict(latents, timesteps, conditioning)
        assert first.shape == latents.shape
        assert torch.isfinite(first).all() and first.abs().sum() > 0
        assert torch.equal(first, again)

    def test_prompts_change_the_prediction(self, backbone) -> None:
        latents, timesteps = self._inputs(backbone, batch=1)
        red = backbone.predict(latents, timesteps, [backbone.encode_prompt("a red circle")])
        dog = backbone.predict(latents, timesteps, [backbone.encode_prompt("a dog running")])
        assert not torch.equal(red, dog)

    def test_decoder_yields_uint8_frames_of_the_video_size(self, backbone) -> None:
        shape = backbone.latent_shape(*self.video_size)
        decoder = backbone.frame_decoder()
        frames = [frame for k in range(3) for frame in decoder.decode(torch.randn(shape, generator=torch.Generator().manual_seed(k)))]
        frames += list(decoder.flush())
        per_latent = backbone.defaults.frames_per_latent
        assert len(frames) in (3 * per_latent, 1 + 2 * per_latent)
        assert all(f.shape == (*self.video_size, 3) and f.dtype == np.uint8 for f in frames)
