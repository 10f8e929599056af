"""Ordinary clip sampling for the baselines, and the simplest long video: independent clips.

:class:`ClipDenoiser` is the ordinary sampler the baselines share: every frame of a clip at one
level ``l`` of the run's grid (``S = n f`` levels, the grid FIFO walks), the model called through
:class:`~fifo_core.model_call.GuidedModel`, then the core's per-frame step one level down. Random
draws come from :class:`~fifo_core.noise.NoiseStreams`: latent ``k``'s starting noise is the same
``("frame", k)`` draw FIFO gives latent ``k``, so a strategy and FIFO with one seed start from the
same noise.

Shapes: a clip is ``'f c h w'``; a batch of clips ``'b f c h w'``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from fifo_core.backbone import Backbone
from fifo_core.config import RunSettings
from fifo_core.model_call import GuidedModel
from fifo_core.noise import NoiseStreams
from fifo_core.steps import step_down


class ClipDenoiser:
    """The ordinary sampler's pieces for one backbone and one run's settings."""

    def __init__(self, backbone: Backbone, settings: RunSettings) -> None:
        settings.check_schedule(backbone.schedule)
        self.backbone, self.settings = backbone, settings
        self.window = settings.layout.window
        self.num_levels = settings.layout.num_levels
        self.grid = backbone.schedule.grid(self.num_levels, settings.timestep_spacing)
        self.timesteps = self.grid.timesteps.to(torch.float32)
        self.noise = NoiseStreams(settings.seed, backbone.latent_shape(settings.height, settings.width), backbone.device)
        self.model = GuidedModel(
            backbone, guidance_scale=settings.guidance_scale, negative_prompt=settings.negative_prompt, max_batch=settings.max_batch
        )
        start = settings.start_guidance_scale
        # content made from nothing gets the guidance FIFO's own first clip gets
        self.fresh_guidance = settings.guidance_scale if start is None else start

    def prompt(self, latent: int) -> str:
        """The prompt in force at latent ``latent``."""
        return self.settings.timeline.prompt_at(self.backbone.defaults.first_frame_of_latent(latent))

    def predict(self, clips: torch.Tensor, level: int, prompts: Sequence[str], guidance_scale: float) -> torch.Tensor:
        """Guided model output ``'b f c h w'`` for clips ``'b f c h w'`` whose frames are all at ``level``."""
        rows, frames = clips.shape[:2]
        timesteps = self.timesteps[level].expand(rows, frames).to(self.backbone.device)
        output = self.model(clips.permute(0, 2, 1, 3, 4), timesteps, list(prompts), guidance_scale)
        return output.permute(0, 2, 1, 3, 4)

    def step(self, frames: torch.Tensor, output: torch.Tensor, level: int, noise_index: int) -> torch.Tensor:
        """Frames ``'k c h w'`` at ``level`` one level down; a stochastic step takes draw
        ``("step", noise_index)``."""
        noise = self.noise.draw("step", noise_index, frames.shape) if self.settings.eta > 0 else None
        levels = torch.full((frames.shape[0],), level, dtype=torch.long)
        return step_down(frames, output, levels, self.grid, self.backbone.schedule.prediction_type, self.settings.eta, noise)

    def noise_index(self, piece: int, level: int) -> int:
        """A step-noise index of its own for every (piece, level)."""
        return piece * (self.num_levels + 1) + level

    def sample(self, clip: torch.Tensor, prompt: str, guidance_scale: float, piece: int = 0) -> torch.Tensor:
        """An ordinary clip ``'f c h w'`` from its noise ``clip``: ``S`` steps, all frames at one level."""
        for level in range(self.num_levels, 0, -1):
            output = self.predict(clip[None], level, [prompt], guidance_scale)[0]
            clip = self.step(clip, output, level, self.noise_index(piece, level))
        return clip

    def initial_noise(self, first: int, count: int) -> torch.Tensor:
        """Starting noise ``'count c h w'`` of latents ``first .. first + count - 1``."""
        return torch.stack([self.noise.frame(latent) for latent in range(first, first + count)])


class LongVideo:
    """What every strategy offers: clean latents in video order, where its pieces join, and the
    most latent memory it held (``peak_bytes``)."""

    name = "long video"

    def __init__(self, backbone: Backbone, settings: RunSettings) -> None:
        self.backbone = backbone
        self.denoiser = ClipDenoiser(backbone, settings)
        self.window = self.denoiser.window
        self.peak_bytes = 0

    def _holding(self, *tensors: torch.Tensor) -> None:
        self.peak_bytes = max(self.peak_bytes, sum(t.numel() * t.element_size() for t in tensors))

    def latents(self, frames: int) -> Iterator[torch.Tensor]:
        """Clean latents ``'c h w'``, ``frames`` of them."""
        raise NotImplementedError

    def boundaries(self, frames: int) -> list[int]:
        """Indices of the latents that begin a new piece (after the first)."""
        raise NotImplementedError

    def frames(self, count: int) -> Iterator[np.ndarray]:
        """Decoded frames ``'h w 3'`` uint8 (for backbones of one frame per latent, frame ``k`` is
        latent ``k``)."""
        if count < 1:
            raise ValueError(f"the frame count must be at least 1, got {count}")
        decoder = self.backbone.frame_decoder()
        made = 0
        for latent in self.latents(count):
            for frame in decoder.decode(latent):
                if made < count:
                    made += 1
                    yield frame
            if made >= count:
                return
        for frame in decoder.flush():
            if made < count:
                made += 1
                yield frame


class IndependentClips(LongVideo):
    """Ordinary clips of ``f`` frames, each sampled on its own from fresh noise and joined end to
    end: nothing ties one clip to the next, so every join is a cut."""

    name = "independent"

    def latents(self, frames: int) -> Iterator[torch.Tensor]:
        f = self.window
        for piece in range(-(-frames // f)):
            first = piece * f
            noise = self.denoiser.initial_noise(first, f)
            clip = self.denoiser.sample(noise, self.denoiser.prompt(first + f // 2), self.denoiser.fresh_guidance, piece)
            self._holding(noise, clip)
            yield from clip[: frames - first]

    def boundaries(self, frames: int) -> list[int]:
        return list(range(self.window, frames, self.window))
