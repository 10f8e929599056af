"""The FIFO sampling loop, as an iterator of clean latents and of decoded frames.

One iteration (Kim et al. 2024, Algorithm 1 with latent partitioning and lookahead):

1. gather the windows whose written slots move this iteration, as ``'b c f h w'`` latents with
   per-frame timesteps ``'b f'``; all windows and both halves of classifier-free guidance go
   to the backbone as one batch (``max_batch`` caps the rows per call);
2. keep each window's output for the slots it writes and move every moving slot one level
   down with the per-frame scheduler step (:mod:`fifo_core.steps`);
3. when the head is clean, dequeue it and let fresh noise in at the tail (:mod:`fifo_core.queue`).

The loop holds only the queue, so memory does not grow with the number of frames.
All randomness comes from generators seeded by ``(seed, stream, index)``: a frame's initial noise
depends on the seed and the frame's index alone, the step noise on the seed and the iteration.
It is drawn on the CPU, so the same seed gives the same noise on any device.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fifo_core.backbone import Backbone, QueueStart, Row
from fifo_core.config import PromptTimeline
from fifo_core.decoding import BackgroundDecoder
from fifo_core.distributed import WindowGroup
from fifo_core.errors import ConfigError
from fifo_core.partition import QueueLayout, Window
from fifo_core.queue import LatentQueue
from fifo_core.schedule import FlowMatchingSchedule, TimestepSpacing, add_noise
from fifo_core.steps import FrameLevels, SamplerName, ddim_step, sampler_eta

_NOISE_STREAMS = {"frame": 1, "warmup": 2, "context": 3, "step": 4, "clip": 5, "diagonal": 6}


def seeded_noise(seed: int, stream: str, index: int, shape: Sequence[int]) -> torch.Tensor:
    """Standard Gaussian noise determined by ``(seed, stream, index)`` alone (float32, CPU)."""
    state = np.random.SeedSequence([seed, _NOISE_STREAMS[stream], index]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


@dataclass(frozen=True)
class IterationEvent:
    """What one iteration did; handed to observers."""

    iteration: int
    model_rows: int
    dequeued_latent: int | None
    seconds: float


@dataclass(frozen=True)
class CleanLatent:
    """A latent frame that left the queue; ``index`` counts from 0 in the order of the video."""

    index: int
    latent: torch.Tensor
    prompt: str


class FifoSampler:
    """Runs FIFO-Diffusion with one backbone. Create one per video.

    Arguments are the resolved run settings (see :class:`fifo_core.config.RunConfig`).
    ``overlap_decode`` decodes each clean latent on a thread of its own while the next iteration
    runs (:class:`~fifo_core.decoding.BackgroundDecoder`; by default on CUDA backbones only): the
    same frames, one latent later.
    ``on_iteration`` receives an :class:`IterationEvent` after each iteration. With ``group``
    (see :mod:`fifo_core.distributed`) each process evaluates a share of every iteration's windows.
    """

    def __init__(
        self,
        backbone: Backbone,
        prompt: str | PromptTimeline,
        *,
        layout: QueueLayout,
        height: int,
        width: int,
        negative_prompt: str = "",
        guidance_scale: float = 1.0,
        sampler: SamplerName = "ddim",
        eta: float = 0.0,
        timestep_spacing: TimestepSpacing = "trailing",
        seed: int = 0,
        start: QueueStart = "ramp",
        start_guidance_scale: float | None = None,
        max_batch: int | None = None,
        on_iteration: Callable[[IterationEvent], None] | None = None,
        group: WindowGroup | None = None,
        overlap_decode: bool | None = None,
    ) -> None:
        self.backbone = backbone
        # Decoding on a thread of its own pays where the model runs on a GPU; on CPUs the two would
        # share the same cores.
        self.overlap_decode = backbone.device.type == "cuda" if overlap_decode is None else overlap_decode
        self.group = group
        self.timeline = prompt if isinstance(prompt, PromptTimeline) else PromptTimeline.single(prompt)
        self.layout = layout
        self.negative_prompt = negative_prompt
        self.guidance_scale = guidance_scale
        self.start_guidance_scale = guidance_scale if start_guidance_scale is None else start_guidance_scale
        self.schedule = backbone.schedule
        self.eta = sampler_eta(sampler, eta)
        if sampler == "euler" and not isinstance(self.schedule, FlowMatchingSchedule):
            raise ConfigError(
                "the euler sampler is for flow-matching backbones; this backbone has a discrete schedule, "
                "use --sampler ddim or ddpm",
                field="sampler",
            )
        if isinstance(self.schedule, FlowMatchingSchedule) and self.eta > 0:
            raise ConfigError(
                f"sampler {sampler!r} with eta {eta} is stochastic, which needs a discrete schedule; "
                "this backbone is flow matching: use --sampler euler",
                field="sampler",
            )
        self.grid = self.schedule.grid(layout.num_levels, timestep_spacing)
        self.latent_shape = tuple(backbone.latent_shape(height, width))
        self.seed = seed
        self.start = start
        self.max_batch = max_batch
        self.on_iteration = on_iteration
        self._conditioning: dict[str, Any] = {}
        self._takes_rows = "rows" in inspect.signature(backbone.predict).parameters
        self._timesteps = self.grid.timesteps.to(torch.float32)

    # -- noise and conditioning ------------------------------------------------------------

    def _noise(self, stream: str, index: int, shape: Sequence[int] | None = None) -> torch.Tensor:
        shape = self.latent_shape if shape is None else shape
        return seeded_noise(self.seed, stream, index, shape).to(self.backbone.device)

    def _frame_noise(self, frame_id: int) -> torch.Tensor:
        return self._noise("frame", frame_id) if frame_id >= 0 else self._noise("warmup", -frame_id)

    def _encode(self, prompt: str) -> Any:
        if prompt not in self._conditioning:
            self._conditioning[prompt] = self.backbone.encode_prompt(prompt)
        return self._conditioning[prompt]

    def prompt_for_latent(self, frame_id: int) -> str:
        """The prompt in force at the first video frame of latent ``frame_id`` (warm-up latents,
        with negative ids, belong to the first prompt)."""
        return self.timeline.prompt_at(self.backbone.defaults.first_frame_of_latent(frame_id))

    # -- the model call --------------------------------------------------------------------

    def _guided_prediction(
        self, latents: torch.Tensor, timesteps: torch.Tensor, prompts: list[str], guidance_scale: float | None = None,
        groups: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Backbone output for ``latents`` ``'b c f h w'``, ``timesteps`` ``'b f'``, with guidance
        (``guidance_scale``, the run's by default).

        Conditional and unconditional rows go in one batch, split only by ``max_batch``.
        """
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        guided = scale != 1.0
        conditioning = [self._encode(prompt) for prompt in prompts]
        groups = range(len(prompts)) if groups is None else groups
        rows = [Row(group, "conditional" if guided else "unguided", prompt) for group, prompt in zip(groups, conditioning)]
        if guided:
            negative = self._encode(self.negative_prompt)
            rows += [Row(group, "unconditional", prompt) for group, prompt in zip(groups, conditioning)]
            conditioning = conditioning + [negative] * len(prompts)
            latents = torch.cat([latents, latents])
            timesteps = torch.cat([timesteps, timesteps])
        count = latents.shape[0]
        chunk = count if self.max_batch is None else self.max_batch
        with torch.no_grad():  # sampling never needs gradients; without this, activations are kept
            outputs = []
            for i in range(0, count, chunk):
                extra = {"rows": rows[i : i + chunk]} if self._takes_rows else {}
                outputs.append(self.backbone.predict(latents[i : i + chunk], timesteps[i : i + chunk], conditioning[i : i + chunk], **extra).float())
        output = torch.cat(outputs)
        if not guided:
            return output
        conditional, unconditional = output.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    def _window_outputs(self, latents: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """:meth:`_guided_prediction` for every window, shared out over the group's ranks."""
        if self.group is None:
            return self._guided_prediction(latents, timesteps, prompts)
        rows = self.group.my_rows(len(prompts))
        if rows:
            mine = self._guided_prediction(latents[rows], timesteps[rows], [prompts[row] for row in rows], groups=rows)
        else:
            mine = latents[:0].float()
        return self.group.gather_rows(mine, len(prompts))

    # -- queue start -----------------------------------------------------------------------

    def _ramp_queue(self) -> LatentQueue:
        """Pure-noise start: every slot at the top level; the warm-up ramp is the ordinary loop."""
        context, levels = self.layout.context, self.layout.num_levels
        latents = [self._noise("context", slot) for slot in range(context)]
        latents += [self._frame_noise(frame) for frame in range(levels)]
        return LatentQueue(
            latents=torch.stack(latents),
            levels=torch.full((context + levels,), levels, dtype=torch.long),
            frame_ids=torch.cat([torch.arange(-context, 0), torch.arange(levels)]),
            context=context,
            num_levels=levels,
        )

    def _clip_queue(self) -> LatentQueue:
        """The reference implementation's start: sample one ordinary clip of ``f`` frames with all
        frames at the same level, then forward-noise it along the diagonal. Slots before the last
        ``f`` hold frame 0 again; they get negative ids and are never handed out."""
        f, levels, context = self.layout.window, self.layout.num_levels, self.layout.context
        discarded = levels - f
        clip = torch.stack([self._frame_noise(frame) for frame in range(f)])
        prompt = self.prompt_for_latent(0)
        for level in range(levels, 0, -1):
            timesteps = self._timesteps[level].expand(1, f).to(self.backbone.device)
            output = self._guided_prediction(clip.permute(1, 0, 2, 3)[None], timesteps, [prompt], self.start_guidance_scale)
            current = FrameLevels.gather(self.grid, torch.full((f,), level))
            after = FrameLevels.gather(self.grid, torch.full((f,), level - 1))
            noise = self._noise("clip", level, (f, *self.latent_shape)) if self.eta > 0 else None
            clip = ddim_step(clip, output[0].permute(1, 0, 2, 3), current, after, self.schedule.prediction_type, self.eta, noise)
        frame_ids = torch.arange(-discarded, f)
        sources = clip[frame_ids.clamp(min=0)]
        slot_levels = torch.arange(1, levels + 1)
        # fresh draws: clip frames were sampled from ('frame', k), and reusing that noise would tie
        # the forward noise to their content
        noise = torch.stack([self._noise("diagonal", slot) for slot in range(levels)])
        noised = add_noise(sources, noise, self.grid.signal[slot_levels], self.grid.noise[slot_levels])
        latents = torch.cat([clip[:1].expand(context, *self.latent_shape), noised])
        return LatentQueue(
            latents=latents.contiguous(),
            levels=torch.cat([torch.zeros(context, dtype=torch.long), slot_levels]),
            frame_ids=torch.cat([torch.arange(-discarded - context, -discarded), frame_ids]),
            context=context,
            num_levels=levels,
        )

    # -- the loop --------------------------------------------------------------------------

    def _window_prompt(self, queue: LatentQueue, window: Window) -> str:
        middle = (window.write_start + window.write_stop - 1) // 2
        return self.prompt_for_latent(int(queue.frame_ids[middle]))

    def _denoise(self, queue: LatentQueue, iteration: int) -> int:
        """Move every moving slot one level down; return the number of model rows used."""
        moving = queue.moving()
        windows = [w for w in self.layout.windows if bool(moving[w.write_start : w.write_stop].any())]
        if not windows:
            return 0
        device = self.backbone.device
        latents = torch.stack([queue.latents[w.read_start : w.read_stop] for w in windows]).permute(0, 2, 1, 3, 4)
        timesteps = torch.stack([self._timesteps[queue.levels[w.read_start : w.read_stop]] for w in windows])
        prompts = [self._window_prompt(queue, w) for w in windows]
        output = self._window_outputs(latents, timesteps.to(device), prompts).permute(0, 2, 1, 3, 4)
        model_output = torch.zeros_like(queue.latents)
        for row, window in enumerate(windows):
            model_output[window.write_start : window.write_stop] = output[row, window.write_start - window.read_start :]
        slots = moving.nonzero().squeeze(1)
        levels = queue.levels[slots]
        noise = self._noise("step", iteration, queue.latents.shape)[slots] if self.eta > 0 else None
        queue.latents[slots] = ddim_step(
            queue.latents[slots],
            model_output[slots],
            FrameLevels.gather(self.grid, levels),
            FrameLevels.gather(self.grid, levels - 1),
            self.schedule.prediction_type,
            self.eta,
            noise,
        )
        queue.levels[slots] = levels - 1
        return len(windows) * (2 if self.guidance_scale != 1.0 else 1)

    def latents(self) -> Iterator[CleanLatent]:
        """Clean latent frames ``'c h w'`` in video order, without end."""
        queue = self._clip_queue() if self.start == "clip" else self._ramp_queue()
        next_frame = int(queue.frame_ids[-1]) + 1
        iteration = 0
        while True:
            began = time.perf_counter()
            rows = self._denoise(queue, iteration)
            dequeued = None
            if queue.head_is_clean():
                frame_id, latent = queue.shift_in(self._frame_noise(next_frame), next_frame)
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
        decoder = self.backbone.frame_decoder()
        if self.overlap_decode:
            decoder = BackgroundDecoder(decoder, self.backbone.device)
        produced = 0
        try:
            for clean in self.latents():
                for frame in decoder.decode(clean.latent):
                    yield frame
                    produced += 1
                    if limit is not None and produced >= limit:
                        return
        finally:
            if isinstance(decoder, BackgroundDecoder):
                decoder.close()
