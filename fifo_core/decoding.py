"""Decoding a stream of clean latents with a video VAE that compresses time.

A temporal VAE decodes clips, not single latents: its first latent gives one frame and every later
one ``per_latent`` frames, and each frame depends on the latents around it. FIFO hands out one
clean latent per step, so :class:`ChunkedClipDecoder` decodes small clips at the queue head: each
``chunk`` of new latents together with up to ``context`` earlier ones (and ``lookahead`` later
ones, for decoders that look ahead in time), keeping only the frames of the new latents. Memory
stays bounded by the clip length, however long the video runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fifo_core.backbone import to_uint8_frame
from fifo_core.errors import ConfigError


class ChunkedClipDecoder:
    """A :class:`~fifo_core.backbone.FrameDecoder` over ``decode_clip``.

    ``decode_clip`` takes latents ``'c t h w'`` (as the queue hands them out) and returns the
    video ``'3 T h w'`` in ``[-1, 1]`` with ``T = 1 + per_latent * (t - 1)``, as a whole-clip
    decode would. Output lags ``chunk + lookahead`` latents behind the queue head; :meth:`flush`
    decodes what is left at the end of a run. In total the first latent gives 1 frame and every
    later one ``per_latent``.
    """

    def __init__(
        self,
        decode_clip: Callable[[torch.Tensor], torch.Tensor],
        *,
        per_latent: int,
        context: int,
        lookahead: int = 0,
        chunk: int = 1,
    ) -> None:
        if context < 1 or lookahead < 0 or chunk < 1:
            raise ConfigError(
                f"decode_context must be >= 1, decode_lookahead >= 0 and decode_chunk >= 1; got {context}, {lookahead}, {chunk}. "
                "A context of at least one latent is needed because a clip's first latent decodes to a single frame",
                field="backbone_options",
            )
        self.decode_clip = decode_clip
        self.per_latent = per_latent
        self.context, self.lookahead, self.chunk = context, lookahead, chunk
        self._latents: list[torch.Tensor] = []  # kept latents; the first of them has index self._first
        self._first = 0
        self._emitted = 0  # latents whose frames were handed out

    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        self._latents.append(latent)
        received = self._first + len(self._latents)
        if received - self._emitted >= self.chunk + self.lookahead:
            return self._emit(self._emitted + self.chunk, received)
        return []

    def flush(self) -> list[np.ndarray]:
        received = self._first + len(self._latents)
        return self._emit(received, received) if received > self._emitted else []

    @torch.no_grad()
    def _emit(self, until: int, available: int) -> list[np.ndarray]:
        """Frames of latents ``emitted .. until - 1``, decoded with the kept latents up to ``available``."""
        begin = max(self._first, self._emitted - self.context)
        clip = torch.stack(self._latents[begin - self._first : available - self._first], dim=1)
        video = self.decode_clip(clip)  # '3 T h w', T = 1 + per_latent * (latents - 1)
        # Latent k of the clip (k >= 1) owns frames per_latent*(k-1)+1 .. per_latent*k; latent 0 owns frame 0.
        start = 0 if self._emitted == 0 else self.per_latent * (self._emitted - begin) - (self.per_latent - 1)
        stop = self.per_latent * (until - 1 - begin) + 1
        frames = [to_uint8_frame(video[:, k]) for k in range(start, stop)]
        self._emitted = until
        keep_from = max(0, self._emitted - self.context)
        del self._latents[: keep_from - self._first]
        self._first = keep_from
        return frames
