"""Seeded noise streams: every random draw of a run is determined by ``(seed, stream, index)``.

A frame's initial noise depends on the seed and the frame's index alone, a step's noise on the
seed and the iteration; no draw depends on what was drawn before it, so changing the queue start
or the batch size never shifts the noise of later frames. Noise is drawn on the CPU, so the same
seed gives the same video on any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# One number per stream, so two streams never hand out the same draw.
STREAMS = {"frame": 1, "warmup": 2, "context": 3, "step": 4, "clip": 5, "diagonal": 6, "continue": 7}


def seeded_noise(seed: int, stream: str, index: int, shape: Sequence[int]) -> torch.Tensor:
    """Standard Gaussian noise determined by ``(seed, stream, index)`` alone (float32, CPU)."""
    state = np.random.SeedSequence([seed, STREAMS[stream], index]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


class NoiseStreams:
    """The draws of one run, as latents ``'c h w'`` (or ``shape``) on the backbone's device."""

    def __init__(self, seed: int, latent_shape: Sequence[int], device: torch.device) -> None:
        self.seed = seed
        self.latent_shape = tuple(latent_shape)
        self.device = device

    def draw(self, stream: str, index: int, shape: Sequence[int] | None = None) -> torch.Tensor:
        shape = self.latent_shape if shape is None else shape
        return seeded_noise(self.seed, stream, index, shape).to(self.device)

    def frame(self, frame_id: int) -> torch.Tensor:
        """The initial noise of latent ``frame_id``; warm-up latents (negative ids) have a stream of their own."""
        return self.draw("frame", frame_id) if frame_id >= 0 else self.draw("warmup", -frame_id)
