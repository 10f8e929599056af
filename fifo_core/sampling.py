"""The FIFO sampling loop (Kim et al. 2024, Algorithm 1, with latent partitioning and lookahead).

The queue holds ``S = n f`` latents at increasing noise levels (plus ``f/2`` clean context slots
with lookahead). One iteration:

1. diagonal denoising: every window whose written slots move this iteration reads its ``f``
   slots, latents ``'b c f h w'`` at a timestep per frame ``'b f'``; all windows go to the model
   as one guided call (:mod:`fifo_core.model_call`);
2. each window keeps its output only for the slots it writes (with lookahead, the back half of
   a window: those frames see ``f/2`` cleaner frames before them), and every moving slot steps
   one level down (:mod:`fifo_core.steps`);
3. once the head is clean it is dequeued and fresh noise enters at the tail (:mod:`fifo_core.queue`).

Only the queue is held, so memory does not grow with the video. The run's start fills the queue
first (:mod:`fifo_core.starts`); every random draw comes from :mod:`fifo_core.noise`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import islice
import numpy as np
import torch

from fifo_core.backbone import Backbone
from fifo_core.compiled import eager_calls
from fifo_core.config import RunSettings
from fifo_core.decoding import frame_stream
from fifo_core.distributed import WindowGroup
from fifo_core.errors import ConfigError
from fifo_core.events import CleanLatent, IterationEvent
from fifo_core.model_call import GuidedModel
from fifo_core.noise import NoiseStreams
from fifo_core.queue import LatentQueue
from fifo_core.steps import step_down


class FifoSampler:
    """Runs FIFO-Diffusion with one backbone and one run's ``settings``; create one per video.

    ``on_iteration`` receives an :class:`IterationEvent` after each iteration. With ``group``
    (see :mod:`fifo_core.distributed`) each process evaluates a share of every iteration's windows.
    """

    def __init__(
        self, backbone: Backbone, settings: RunSettings, *,
        on_iteration: Callable[[IterationEvent], None] | None = None, group: WindowGroup | None = None,
    ) -> None:
        settings.check_schedule(backbone.schedule)
        self.backbone, self.settings, self.on_iteration = backbone, settings, on_iteration
        self.layout, self.schedule, self.eta = settings.layout, backbone.schedule, settings.eta
        self.grid = self.schedule.grid(self.layout.num_levels, settings.timestep_spacing)
        self.noise = NoiseStreams(settings.seed, backbone.latent_shape(settings.height, settings.width), backbone.device)
        self.model = GuidedModel(
            backbone, guidance_scale=settings.guidance_scale, negative_prompt=settings.negative_prompt, max_batch=settings.max_batch, group=group
        )
        self._timesteps = self.grid.timesteps.to(torch.float32)

    def prompt_for_latent(self, frame_id: int) -> str:
        """The prompt in force at the first video frame of latent ``frame_id`` (warm-up latents,
        with negative ids, belong to the first prompt)."""
        return self.settings.timeline.prompt_at(self.backbone.defaults.first_frame_of_latent(frame_id))

    def _step(self, latents: torch.Tensor, output: torch.Tensor, levels: torch.Tensor, stream: str, index: int, slots: torch.Tensor) -> torch.Tensor:
        """Frames ``slots`` of ``latents`` ``'k c h w'`` one level down from ``levels``; a stochastic
        step takes draw ``(stream, index)`` of the whole of ``latents``' shape, cut to ``slots``."""
        noise = self.noise.draw(stream, index, latents.shape)[slots] if self.eta > 0 else None
        return step_down(latents[slots], output[slots], levels[slots], self.grid, self.schedule.prediction_type, self.eta, noise)

    def _clip_step(self, clip: torch.Tensor, level: int, guidance_scale: float) -> torch.Tensor:
        """One ordinary step of a clip ``'f c h w'`` at ``level`` (the clip start's)."""
        timesteps = self._timesteps[level].expand(1, clip.shape[0]).to(self.backbone.device)
        with eager_calls():  # a warm-up shape: not worth compiling (fifo_core.compiled)
            output = self.model(clip.permute(1, 0, 2, 3)[None], timesteps, [self.prompt_for_latent(0)], guidance_scale)
        frames = torch.arange(clip.shape[0])
        return self._step(clip, output[0].permute(1, 0, 2, 3), torch.full(frames.shape, level), "clip", level, frames)

    def start_queue(self) -> LatentQueue:
        """The queue as the run's start fills it, before the first iteration."""
        return self.settings.start.fill(self.layout, self.grid, self.noise, self._clip_step)

    def _denoise(self, queue: LatentQueue, iteration: int) -> int:
        """Algorithm 1's inner loop: move every moving slot one level down; return the model rows used."""
        moving = queue.moving()
        windows = [w for w in self.layout.windows if bool(moving[w.write_start : w.write_stop].any())]
        if not windows:
            return 0
        latents = torch.stack([queue.latents[w.read_start : w.read_stop] for w in windows]).permute(0, 2, 1, 3, 4)
        timesteps = torch.stack([self._timesteps[queue.levels[w.read_start : w.read_stop]] for w in windows])
        # a window's prompt is the one in force at the middle of the slots it writes
        prompts = [self.prompt_for_latent(int(queue.frame_ids[(w.write_start + w.write_stop - 1) // 2])) for w in windows]
        with eager_calls(len(windows) < len(self.layout.windows)):  # a ramp's warm-up shapes run eagerly
            output = self.model.windows(latents, timesteps.to(self.backbone.device), prompts).permute(0, 2, 1, 3, 4)
        model_output = torch.zeros_like(queue.latents)
        for row, window in enumerate(windows):  # each window keeps only the slots it writes
            model_output[window.write_start : window.write_stop] = output[row, window.write_start - window.read_start :]
        slots = moving.nonzero().squeeze(1)
        queue.latents[slots] = self._step(queue.latents, model_output, queue.levels, "step", iteration, slots)
        queue.levels[slots] -= 1
        return self.model.rows(len(windows))

    def latents(self) -> Iterator[CleanLatent]:
        """Clean latent frames ``'c h w'`` in video order, without end."""
        queue = self.start_queue()
        next_frame, iteration = int(queue.frame_ids[-1]) + 1, 0
        while True:
            began = time.perf_counter()
            rows = self._denoise(queue, iteration)
            dequeued = None
            if queue.head_is_clean():
                frame_id, latent = queue.shift_in(self.noise.frame(next_frame), next_frame)
                next_frame += 1
                dequeued = frame_id if frame_id >= 0 else None
            if self.on_iteration is not None:
                self.on_iteration(IterationEvent(iteration, rows, dequeued, time.perf_counter() - began))
            iteration += 1
            if dequeued is not None:
                yield CleanLatent(dequeued, latent, self.prompt_for_latent(dequeued))

    def frames(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """Decoded RGB frames ``'h w 3'`` uint8; ``limit`` video frames, or without end."""
        if limit is not None and limit < 1:
            raise ConfigError(f"the frame count must be at least 1, got {limit}", field="frames")
        with frame_stream(self.backbone, self.settings.overlap_decode) as decoder:
            decoded = (frame for clean in self.latents() for frame in decoder.decode(clean.latent))
            yield from islice(decoded, limit)  # stops at the limit without asking for another latent
