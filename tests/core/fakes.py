"""A tiny fake backbone that records every model call, and an observer of the real sampling loop.

The fake's prediction is a smooth deterministic function of its inputs, computed row by row, so
the output of a row never depends on which other rows share its batch (``max_batch`` must not
change the result) and differs between prompts (guidance and timelines are visible in it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.config import PromptTimeline, RunConfig
from fifo_core.events import IterationEvent
from fifo_core.queue import LatentQueue
from fifo_core.sampling import FifoSampler
from fifo_core.schedule import DiscreteSchedule, NoiseSchedule

LATENT_CHANNELS = 2


@dataclass(frozen=True)
class Conditioning:
    """What the fake's ``encode_prompt`` returns: the prompt, so a test can read it back."""

    prompt: str


@dataclass
class ModelCall:
    """One ``predict`` call: latents ``'b c f h w'``, timesteps ``'b f'``, one conditioning per row,
    and the output it returned."""

    latents: torch.Tensor
    timesteps: torch.Tensor
    conditioning: list[Conditioning]
    output: torch.Tensor

    @property
    def prompts(self) -> list[str]:
        return [row.prompt for row in self.conditioning]


def prompt_offset(prompt: str) -> float:
    """A distinct, deterministic number per prompt (``hash`` is salted per process)."""
    return (sum(ord(char) * (index + 1) for index, char in enumerate(prompt)) % 97) / 97.0


def smooth_prediction(latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[Conditioning]) -> torch.Tensor:
    """Bounded, depends on the latent, the frame's timestep and the row's prompt."""
    offsets = torch.tensor([prompt_offset(row.prompt) for row in conditioning], dtype=latents.dtype)
    per_frame = torch.sin(timesteps.to(latents.dtype) / 97.0)[:, None, :, None, None]
    return 0.5 * torch.tanh(latents) + 0.1 * per_frame + offsets[:, None, None, None, None]


class RecordingBackbone:
    """A :class:`fifo_core.backbone.Backbone` whose latents are ``(2, height, width)``; it records
    every ``predict`` call and every prompt it encodes."""

    def __init__(
        self,
        *,
        schedule: NoiseSchedule | None = None,
        window: int = 4,
        prediction: Callable[[torch.Tensor, torch.Tensor, Sequence[Conditioning]], torch.Tensor] = smooth_prediction,
        frames_per_latent: int = 1,
        decoder_factory: Callable[[], object] | None = None,
    ) -> None:
        # "sample" prediction keeps every step bounded whatever the prediction function is.
        self.schedule = schedule if schedule is not None else DiscreteSchedule.scaled_linear(prediction_type="sample")
        self.defaults = BackboneDefaults(height=2, width=2, window=window, frames_per_latent=frames_per_latent)
        self.device = torch.device("cpu")
        self.prediction = prediction
        self.decoder_factory = decoder_factory
        self.calls: list[ModelCall] = []
        self.encoded: list[str] = []

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (LATENT_CHANNELS, height, width)

    def encode_prompt(self, prompt: str) -> Conditioning:
        self.encoded.append(prompt)
        return Conditioning(prompt)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[Conditioning]) -> torch.Tensor:
        assert latents.dim() == 5 and timesteps.shape == (latents.shape[0], latents.shape[2])
        assert len(conditioning) == latents.shape[0]
        output = self.prediction(latents, timesteps, conditioning)
        self.calls.append(ModelCall(latents.clone(), timesteps.clone(), list(conditioning), output.clone()))
        return output

    def frame_decoder(self):
        if self.decoder_factory is not None:
            return self.decoder_factory()
        return StatelessDecoder(lambda latent: to_uint8_frame(latent[:1].expand(3, -1, -1)))


@dataclass(frozen=True)
class QueueState:
    latents: torch.Tensor
    levels: torch.Tensor
    frame_ids: torch.Tensor

    @classmethod
    def of(cls, queue: LatentQueue) -> QueueState:
        return cls(queue.latents.clone(), queue.levels.clone(), queue.frame_ids.clone())


@dataclass
class Iteration:
    """One iteration of the real loop: the queue before it, after its denoising step (before any
    dequeue), after it, and the model calls it made."""

    before: QueueState
    stepped: QueueState
    after: QueueState
    calls: list[ModelCall]
    event: IterationEvent
    dequeued: tuple[int, torch.Tensor] | None


@dataclass
class LoopObserver:
    """Watches :meth:`FifoSampler.latents` from the outside: it captures the queue the sampler
    builds and snapshots it around every iteration, without changing what the loop does."""

    sampler: FifoSampler
    backbone: RecordingBackbone
    queue: LatentQueue | None = None
    start_calls: list[ModelCall] = field(default_factory=list)
    iterations: list[Iteration] = field(default_factory=list)
    _state: QueueState | None = None
    _stepped: QueueState | None = None
    _dequeued: tuple[int, torch.Tensor] | None = None
    _calls_seen: int = 0
    tensor_sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sampler.start_queue = self._capturing(self.sampler.start_queue)
        self.sampler.on_iteration = self._iteration_done

    def _capturing(self, build: Callable[[], LatentQueue]) -> Callable[[], LatentQueue]:
        def capture() -> LatentQueue:
            queue = build()
            self.queue = queue
            self.start_calls = list(self.backbone.calls)
            self._calls_seen = len(self.backbone.calls)
            self._state = QueueState.of(queue)
            shift_in = queue.shift_in

            def snapshot_then_shift(latent: torch.Tensor, frame_id: int):
                self._stepped = QueueState.of(queue)
                self._dequeued = shift_in(latent, frame_id)
                return self._dequeued

            queue.shift_in = snapshot_then_shift  # an instance attribute: only this queue is watched
            return queue

        return capture

    def _iteration_done(self, event: IterationEvent) -> None:
        assert self.queue is not None and self._state is not None
        after = QueueState.of(self.queue)
        self.iterations.append(
            Iteration(
                before=self._state,
                stepped=self._stepped if self._stepped is not None else after,
                after=after,
                calls=self.backbone.calls[self._calls_seen :],
                event=event,
                dequeued=self._dequeued,
            )
        )
        self._calls_seen = len(self.backbone.calls)
        self._state, self._stepped, self._dequeued = after, None, None
        self.tensor_sizes.append(held_tensor_elements(self.sampler, self.queue))

    def run(self, iterations: int) -> list:
        """Run the loop for at least ``iterations`` iterations (it stops only when a frame leaves);
        return the clean latents it yielded."""
        yielded = []
        stream = self.sampler.latents()
        while len(self.iterations) < iterations:
            yielded.append(next(stream))
        return yielded


def fake_sampler(
    backbone: RecordingBackbone, prompt: str | PromptTimeline = "a prompt", *, window: int, partitions: int, lookahead: bool, **options
) -> FifoSampler:
    """A sampler over ``backbone`` for a 2x2 video; ``options`` are RunConfig fields. Guidance is
    off and steps are deterministic unless ``options`` say otherwise."""
    options = {"guidance_scale": 1.0, "eta": 0.0} | options
    if options.get("sampler", "ddim") != "ddim":
        del options["eta"]  # the other samplers fix their own
    config = RunConfig(prompt=prompt, window=window, partitions=partitions, lookahead=lookahead, height=2, width=2, **options)
    return FifoSampler(backbone, config.resolve(backbone.defaults))


def held_tensor_elements(*objects: object) -> int:
    """Elements of every tensor an object holds in its attributes (one level of containers deep)."""
    total = 0
    for obj in objects:
        for value in vars(obj).values():
            values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
            total += sum(item.numel() for item in values if isinstance(item, torch.Tensor))
            for item in values:
                if hasattr(item, "__dataclass_fields__"):
                    total += sum(v.numel() for v in vars(item).values() if isinstance(v, torch.Tensor))
    return total


def as_array(latent: torch.Tensor) -> np.ndarray:
    return latent.detach().cpu().numpy()
