"""FreeNoise-style long video: noise rescheduling and window fusion (Qiu et al. 2024, in outline).

The whole video of ``N`` latents is denoised at once, every frame at the same level, in two parts:

* **noise rescheduling** (:func:`rescheduled_noise`): the first window's ``f`` latents start from
  their own noise (latent ``j`` from draw ``("frame", j)``); every later block of ``f`` latents
  starts from the same ``f`` noises in an order shuffled per block (seeded by the run's seed and
  the block), so distant frames share their starting noise and stay alike;
* **window fusion** (:func:`fused_prediction`): at every level, windows of ``f`` latents with a
  stride of ``f // 4`` (at least 1; FreeNoise's own stride for its 16-frame windows is 4) cover
  the video, the last one ending at the last latent; each latent's model output is the mean of the
  outputs of the windows that hold it. The video then steps one level down.

FreeNoise also changes the model's attention for multi-prompt videos; that is not reproduced
here (only what the Backbone protocol reaches). Memory grows with the video: every latent, its
fused output and the per-latent sums are held at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from fifo_core.backbone import Backbone
from fifo_core.baselines.clips import LongVideo
from fifo_core.config import RunSettings
from fifo_core.noise import NoiseStreams


def block_order(seed: int, block: int, window: int) -> torch.Tensor:
    """The shuffled order block ``block`` (``>= 1``) takes the first window's noises in."""
    return torch.from_numpy(np.random.default_rng([seed, block]).permutation(window))


def rescheduled_noise(noise: NoiseStreams, frames: int, window: int) -> torch.Tensor:
    """Starting noise ``'N c h w'`` of ``frames`` latents: the first window's own draws, then each
    later block of ``window`` latents a shuffled copy of them."""
    first = torch.stack([noise.frame(latent) for latent in range(window)])
    blocks = [first] + [first[block_order(noise.seed, block, window)] for block in range(1, -(-frames // window))]
    return torch.cat(blocks)[:frames]


def window_starts(frames: int, window: int, stride: int) -> list[int]:
    """First latents of the fused windows: every ``stride``, and one ending at the last latent."""
    if frames < window:
        raise ValueError(f"window fusion needs at least one window: {frames} latents for windows of {window}")
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return starts


def fused_prediction(
    predict: Callable[[torch.Tensor, Sequence[int]], torch.Tensor],
    latents: torch.Tensor,
    window: int,
    stride: int,
    windows_per_call: int = 16,
) -> torch.Tensor:
    """Per-latent mean of the windows' outputs. ``predict(clips 'b f c h w', starts)`` returns
    outputs ``'b f c h w'``; windows go to it ``windows_per_call`` at a time."""
    starts = window_starts(latents.shape[0], window, stride)
    total = torch.zeros(latents.shape, dtype=torch.float64, device=latents.device)
    count = torch.zeros(latents.shape[0], dtype=torch.float64, device=latents.device)
    for first in range(0, len(starts), windows_per_call):
        chunk = starts[first : first + windows_per_call]
        output = predict(torch.stack([latents[start : start + window] for start in chunk]), chunk)
        for row, start in enumerate(chunk):
            total[start : start + window] += output[row].double()
            count[start : start + window] += 1
    return (total / count.reshape(-1, *([1] * (latents.dim() - 1)))).to(latents.dtype)


class FreeNoiseStyle(LongVideo):
    name = "freenoise"

    def __init__(self, backbone: Backbone, settings: RunSettings, stride: int | None = None, windows_per_call: int = 16) -> None:
        super().__init__(backbone, settings)
        self.stride = max(self.window // 4, 1) if stride is None else stride
        if not 1 <= self.stride <= self.window:
            raise ValueError(f"the window stride must be between 1 and the window ({self.window}), got {self.stride}")
        self.windows_per_call = windows_per_call

    def latents(self, frames: int) -> Iterator[torch.Tensor]:
        denoiser, f = self.denoiser, self.window
        count = max(frames, f)
        video = rescheduled_noise(denoiser.noise, count, f)

        for level in range(denoiser.num_levels, 0, -1):
            def predict(clips: torch.Tensor, starts: Sequence[int], level: int = level) -> torch.Tensor:
                prompts = [denoiser.prompt(start + f // 2) for start in starts]
                return denoiser.predict(clips, level, prompts, denoiser.fresh_guidance)

            output = fused_prediction(predict, video, f, self.stride, self.windows_per_call)
            # held at once: the video, its fused output, and the float64 sums behind it
            self._holding(video, output, torch.empty(video.shape, dtype=torch.float64, device="meta"))
            video = denoiser.step(video, output, level, denoiser.noise_index(0, level))
        yield from video[:frames]

    def boundaries(self, frames: int) -> list[int]:
        """Where a block of rescheduled noise begins (every ``f`` latents): the seams of this strategy."""
        return list(range(self.window, frames, self.window))
