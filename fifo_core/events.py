"""What a run hands out: the clean latents of the sampling loop, and the events observers receive
(plugin hooks, :mod:`fifo_core.hookspecs`, and the callbacks of :func:`fifo_core.api.generate`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fifo_core.config import RunConfig
from fifo_core.sink import SinkFailure


@dataclass(frozen=True)
class CleanLatent:
    """A latent frame ``'c h w'`` that left the queue; ``index`` counts from 0 in video order."""

    index: int
    latent: torch.Tensor
    prompt: str


@dataclass(frozen=True)
class IterationEvent:
    """What one iteration of the sampling loop did."""

    iteration: int
    model_rows: int
    dequeued_latent: int | None
    seconds: float


@dataclass(frozen=True)
class FrameEvent:
    """A video frame handed to the sinks; ``index`` counts from 0."""

    index: int
    frame: np.ndarray
    seconds_since_start: float


@dataclass
class RunSummary:
    """How a run ended."""

    config: RunConfig
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    error: BaseException | None = None
    sink_failures: list[SinkFailure] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
