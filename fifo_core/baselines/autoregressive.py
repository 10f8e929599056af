"""Chunked autoregressive extension: each chunk continues the previous one through inpainting.

The first chunk is an ordinary clip of ``f`` frames. Every later chunk is a window of ``f``
frames whose first ``k`` (``known``, ``f // 2`` by default) are the previous chunk's last ``k``
clean frames and whose other ``f - k`` are new. The model is never told which frames are known;
they are imposed on it (inpainting by replacement):

1. the new frames start from their own noise (latent ``j`` from draw ``("frame", j)``, as FIFO);
2. before every model call at level ``l`` the known frames are replaced by their clean values
   noised to level ``l``: ``a_l x0 + b_l z`` with a fresh draw ``z``;
3. the whole window steps one level down (the core's per-frame step);
4. after the last step the known frames are set to their clean values, so a chunk reproduces
   them exactly, and its ``f - k`` new frames join the video.

A chunk sees only the ``k`` frames before it, so whatever happened earlier is forgotten.
Memory: one chunk, whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from fifo_core.backbone import Backbone
from fifo_core.baselines.clips import LongVideo
from fifo_core.config import RunSettings
from fifo_core.schedule import add_noise


class ChunkedAutoregressive(LongVideo):
    name = "autoregressive"

    def __init__(self, backbone: Backbone, settings: RunSettings, known: int | None = None) -> None:
        super().__init__(backbone, settings)
        self.known = self.window // 2 if known is None else known
        if not 1 <= self.known < self.window:
            raise ValueError(f"a chunk of {self.window} frames can continue from 1 to {self.window - 1} known frames, got {self.known}")

    @property
    def new_per_chunk(self) -> int:
        return self.window - self.known

    def chunk(self, known: torch.Tensor, piece: int, first: int) -> torch.Tensor:
        """Chunk ``piece`` ``'f c h w'``: ``known`` clean frames ``'k c h w'`` continued by new
        latents ``first .. first + f - k - 1``."""
        denoiser, k = self.denoiser, self.known
        grid = denoiser.grid
        prompt = denoiser.prompt(first + self.new_per_chunk // 2)
        window = torch.cat([known, denoiser.initial_noise(first, self.new_per_chunk)])
        for level in range(denoiser.num_levels, 0, -1):
            fresh = denoiser.noise.draw("diagonal", denoiser.noise_index(piece, level), known.shape)
            levels = torch.full((k,), level, dtype=torch.long)
            window[:k] = add_noise(known, fresh, grid.signal[levels], grid.noise[levels])
            output = denoiser.predict(window[None], level, [prompt], denoiser.settings.guidance_scale)[0]
            window = denoiser.step(window, output, level, denoiser.noise_index(piece, level))
            self._holding(window, known, fresh, output)
        window[:k] = known
        return window

    def latents(self, frames: int) -> Iterator[torch.Tensor]:
        denoiser, f = self.denoiser, self.window
        clip = denoiser.sample(denoiser.initial_noise(0, f), denoiser.prompt(f // 2), denoiser.fresh_guidance)
        self._holding(clip)
        yield from clip[:frames]
        made, piece = f, 1
        while made < frames:
            clip = self.chunk(clip[-self.known :], piece, made)
            yield from clip[self.known :][: frames - made]
            made, piece = made + self.new_per_chunk, piece + 1

    def boundaries(self, frames: int) -> list[int]:
        return list(range(self.window, frames, self.new_per_chunk))
