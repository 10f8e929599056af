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
first (:mod:`fifo_core.starts`), or a saved :class:`SamplerPosition` resumes it
(:mod:`fifo_core.state`); every random draw comes from :mod:`fifo_core.noise`, keyed by the
iteration and the frame id, so a resumed run makes the frames an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
import numpy as np
import torch

from fifo_core.backbone import Backbone
from fifo_core.compiled import eager_calls
from fifo_core.config import RunSettings
from fifo_core.decoding import frame_stream
from fifo_core.distributed import WindowGroup
from fifo_core.errors import ConfigError, NumericalError
from fifo_core.events import CleanLatent, IterationEvent
from fifo_core.model_call import GuidedModel
from fifo_core.noise import NoiseStreams
from fifo_core.queue import LatentQueue
from fifo_core.starts import continuation_queue
from fifo_core.steps import step_down
from fifo_core.stopping import RunStopped


@dataclass
class SamplerPosition:
    """Where a run stands between two iterations: the queue, the number of the next iteration and
    the id of the next latent to enter the queue. Together with the seed and the settings this is
    all the loop needs to go on (:meth:`FifoSampler.latents` takes one to resume from)."""

    queue: LatentQueue
    iteration: int
    next_frame: int


class FifoSampler:
    """Runs FIFO-Diffusion with one backbone and one run's ``settings``; create one per video.

    ``on_iteration`` receives an :class:`IterationEvent` after each iteration. With ``group``
    (see :mod:`fifo_core.distributed`) each process evaluates a share of every iteration's windows.
    ``should_stop`` is asked before every iteration; when it says yes the loop raises
    :class:`~fifo_core.stopping.RunStopped` there, where :attr:`position` is whole (every latent
    handed out was consumed, no slot half-stepped). ``init_latents`` ``'t c h w'`` (a clip the
    backbone encoded) replace the run's start: the video continues them
    (:func:`~fifo_core.starts.continuation_queue`).
    """

    def __init__(
        self, backbone: Backbone, settings: RunSettings, *,
        on_iteration: Callable[[IterationEvent], None] | None = None, group: WindowGroup | None = None,
        should_stop: Callable[[], bool] | None = None, init_latents: torch.Tensor | None = None,
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
        self.should_stop = should_stop
        self.init_latents = init_latents
        self.position: SamplerPosition | None = None  # the live position of the running loop

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
        if not bool(torch.isfinite(output).all()):
            raise NumericalError(
                f"the model returned NaN or infinite values in the clip start's step at noise level {level} "
                f"(timestep {float(self._timesteps[level]):g}), before the first iteration; "
                "try another precision (for example -o dtype=float32) or --start ramp"
            )
        frames = torch.arange(clip.shape[0])
        return self._step(clip, output[0].permute(1, 0, 2, 3), torch.full(frames.shape, level), "clip", level, frames)

    def start_queue(self) -> LatentQueue:
        """The queue as the run's start fills it, before the first iteration (or, with
        ``init_latents``, as the clip to continue fills it)."""
        if self.init_latents is not None:
            return continuation_queue(self.layout, self.grid, self.noise, self.init_latents.to(self.backbone.device))
        return self.settings.start.fill(self.layout, self.grid, self.noise, self._clip_step)

    def start_position(self) -> SamplerPosition:
        """The position before the first iteration: the started queue, iteration 0, and the id of
        the latent after the queue's last."""
        queue = self.start_queue()
        return SamplerPosition(queue, iteration=0, next_frame=int(queue.frame_ids[-1]) + 1)

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
        if not bool(torch.isfinite(output).all()):  # before the queue changes, so the position stays whole
            raise self._numerical_fault(queue, iteration, windows, output)
        model_output = torch.zeros_like(queue.latents)
        for row, window in enumerate(windows):  # each window keeps only the slots it writes
            model_output[window.write_start : window.write_stop] = output[row, window.write_start - window.read_start :]
        slots = moving.nonzero().squeeze(1)
        queue.latents[slots] = self._step(queue.latents, model_output, queue.levels, "step", iteration, slots)
        queue.levels[slots] -= 1
        return self.model.rows(len(windows))

    def _numerical_fault(self, queue: LatentQueue, iteration: int, windows: list, output: torch.Tensor) -> NumericalError:
        """The error naming the slots whose model output is not finite: frame ids and levels."""
        bad_slots: set[int] = set()
        finite = torch.isfinite(output).flatten(2).all(dim=2)  # 'b f' (output is 'b f c h w')
        for row, window in enumerate(windows):
            bad_slots |= {window.read_start + int(k) for k in (~finite[row]).nonzero().flatten()}
        slots = sorted(bad_slots)
        frame_ids = [int(queue.frame_ids[slot]) for slot in slots]
        levels = [int(queue.levels[slot]) for slot in slots]
        timesteps = [round(float(self._timesteps[level]), 3) for level in levels]
        return NumericalError(
            f"the model returned NaN or infinite values at iteration {iteration} for latent frames {frame_ids} "
            f"at noise levels {levels} (timesteps {timesteps}); the queue was not changed. "
            "Try another precision (for example -o dtype=float32)",
            iteration=iteration, frame_ids=frame_ids, levels=levels,
        )

    def latents(self, position: SamplerPosition | None = None) -> Iterator[CleanLatent]:
        """Clean latent frames ``'c h w'`` in video order, without end; from the run's start, or
        from ``position`` (a saved one: the same latents as the run it was saved from)."""
        if position is None:
            position = self.start_position()
        self.position = position
        queue = position.queue
        while True:
            if self.should_stop is not None and self.should_stop():
                raise RunStopped
            began = time.perf_counter()
            rows = self._denoise(queue, position.iteration)
            dequeued = None
            if queue.head_is_clean():
                frame_id, latent = queue.shift_in(self.noise.frame(position.next_frame), position.next_frame)
                position.next_frame += 1
                dequeued = frame_id if frame_id >= 0 else None
            iteration = position.iteration
            position.iteration += 1
            if self.on_iteration is not None:
                self.on_iteration(IterationEvent(iteration, rows, dequeued, time.perf_counter() - began))
            if dequeued is not None:
                yield CleanLatent(dequeued, latent, self.prompt_for_latent(dequeued))

    def frames(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """Decoded RGB frames ``'h w 3'`` uint8; ``limit`` video frames, or without end."""
        if limit is not None and limit < 1:
            raise ConfigError(f"the frame count must be at least 1, got {limit}", field="frames")
        with frame_stream(self.backbone, self.settings.overlap_decode) as decoder:
            decoded = (frame for clean in self.latents() for frame in decoder.decode(clean.latent))
            yield from islice(decoded, limit)  # stops at the limit without asking for another latent
