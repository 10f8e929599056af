"""The contract between the core and a video model: the ``Backbone`` protocol an adapter implements.

An adapter is only what differs per model:

* ``schedule``: its training noise schedule and prediction type (:mod:`fifo_core.schedule`);
* ``defaults``: its native window ``f`` and default hyperparameters;
* ``encode_prompt``: text to a conditioning object of the adapter's own type (cached by the core);
* ``predict``: the model output for latents ``'b c f h w'`` with a timestep per frame ``'b f'``,
  each row on its own (the row contract, below);
* ``frame_decoder``: a stream that turns clean latent frames ``'c h w'`` into RGB frames
  ``'h w 3'`` uint8; it may keep state between calls and may yield several video frames per latent
  (temporally compressing VAEs), or none until it has enough latents.

Everything else (queue, grid, partitioning, lookahead, guidance, scheduler steps) is the core's.

The row contract: a row of a ``predict`` call is one window, and its output depends on that row's
inputs alone, never on the other rows of the call. The core relies on it: ``max_batch`` cuts a
call into chunks of any size, and ranks share a step's rows out between them. What a row needs to
know about the rows it belongs with (the two halves of classifier-free guidance) comes from the
core, as a :class:`Row` per row, to a backbone whose ``predict`` takes a ``rows`` argument; it is
never inferred by comparing rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fifo_core.errors import ConfigError
from fifo_core.schedule import NoiseSchedule, TimestepSpacing
from fifo_core.starts import QueueStart, RampStart, start_from
from fifo_core.steps import SamplerName


# Which half of classifier-free guidance a row is: "conditional" (the window's prompt),
# "unconditional" (the negative prompt) or "unguided" (guidance off: the prompt, and no partner).
GuidanceHalf = Literal["unguided", "conditional", "unconditional"]


@dataclass(frozen=True)
class Row:
    """What the core tells a backbone about one row of a :meth:`Backbone.predict` call.

    ``group`` numbers the rows that belong together: the conditional and unconditional halves
    of one guided window share it (and share their latents and timesteps, whatever call each
    lands in). ``prompt`` is the group's encoded prompt, the conditioning of its conditional
    half, so either half can use it without seeing the other.
    """

    group: int
    half: GuidanceHalf
    prompt: Any


class BackboneDefaults(BaseModel):
    """A backbone's native settings; every one can be overridden per run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int = Field(gt=0, description="output height in pixels")
    width: int = Field(gt=0, description="output width in pixels")
    window: int = Field(gt=0, description="native window f: latent frames per model call")
    partitions: int = Field(default=4, gt=0, description="latent partitions n; S = n * f levels")
    lookahead: bool = True
    sampler: SamplerName = "ddim"
    eta: float = Field(default=1.0, ge=0)
    guidance_scale: float = Field(default=7.5, ge=0)
    fps: float = Field(default=8.0, gt=0)
    timestep_spacing: TimestepSpacing = "trailing"
    start: QueueStart = Field(
        default=RampStart(), description="queue start: RampStart() or ClipStart(guidance_scale=...); 'ramp' and 'clip' name them"
    )
    frames_per_latent: int = Field(default=1, gt=0, description="video frames each latent frame decodes to")
    first_latent_frames: int = Field(
        default=1, gt=0,
        description="video frames the first latent of a clip decodes to (1 for causal video VAEs, which encode the first frame as an image)",
    )

    _start_by_name = field_validator("start", mode="before")(start_from)

    def first_frame_of_latent(self, latent: int) -> int:
        """Index of the first video frame latent ``latent`` decodes to (0 for the first latent)."""
        if latent <= 0:
            return 0
        return self.first_latent_frames + self.frames_per_latent * (latent - 1)


@runtime_checkable
class FrameDecoder(Protocol):
    """A stream of decoded frames; one is opened per run."""

    def decode(self, latent: torch.Tensor) -> Sequence[np.ndarray]:
        """Decode one clean latent ``'c h w'``; return zero or more frames ``'h w 3'`` uint8."""

    def flush(self) -> Sequence[np.ndarray]:
        """Return the frames still held back when the run ends."""

    # Optional, for runs saved with --state (fifo_core.state): ``state_dict() -> dict[str, Tensor]``
    # returns what the stream holds between calls (tensors only; counters as 0-d tensors) and
    # ``load_state_dict(state)`` puts it back into a freshly opened stream, so that a resumed run
    # decodes exactly as the interrupted one would have. A stream without them cannot be saved.


@runtime_checkable
class Backbone(Protocol):
    schedule: NoiseSchedule
    defaults: BackboneDefaults
    device: torch.device

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(c, h, w)`` of one latent frame for a video of ``height x width`` pixels."""

    def encode_prompt(self, prompt: str) -> Any:
        """Encode one prompt; the result is passed back to :meth:`predict` unchanged."""

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[Any]) -> torch.Tensor:
        """Model output ``'b c f h w'`` for ``latents`` ``'b c f h w'`` and ``timesteps`` ``'b f'``.

        ``conditioning`` holds one encoded prompt per batch row (rows may differ: guidance puts
        the negative prompt in half of them, prompt timelines give windows different prompts).

        Rows are independent: a row's output must not depend on the other rows of the call, so
        that cutting a call into chunks (``max_batch``) or sharing it out over ranks changes
        nothing (``fifo_core.testing.BackboneConformance`` checks it). A backbone that needs to
        know which rows belong together adds a keyword-only parameter ``rows``; the core then
        passes one :class:`Row` per batch row. A backbone without it never receives it.
        """

    def frame_decoder(self) -> FrameDecoder:
        """Open a decoding stream for one run."""


class StatelessDecoder:
    """A :class:`FrameDecoder` for backbones that decode each latent frame on its own."""

    def __init__(self, decode_one: Callable[[torch.Tensor], np.ndarray | Sequence[np.ndarray]]) -> None:
        self._decode_one = decode_one

    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        frames = self._decode_one(latent)
        return [frames] if isinstance(frames, np.ndarray) else list(frames)

    def flush(self) -> list[np.ndarray]:
        return []

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # nothing is held between latents

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"a stateless decoder has no state to restore, got {sorted(state)}")


def to_uint8_frame(image: torch.Tensor) -> np.ndarray:
    """``'3 h w'`` floats in ``[-1, 1]`` to ``'h w 3'`` uint8."""
    pixels = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class BackboneSpec:
    """What a plugin registers: a name, a factory and what can be shown without loading weights.

    ``options`` is a pydantic model (``extra="forbid"``) of the factory's keyword arguments, or
    ``None`` when the factory takes none.
    """

    name: str
    factory: Callable[..., Backbone]
    defaults: BackboneDefaults
    options: type[BaseModel] | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    plugin: str = field(default="", compare=False)

    def create(self, options: dict[str, Any] | None = None) -> Backbone:
        options = dict(options or {})
        if self.options is None:
            if options:
                raise ConfigError(
                    f"backbone {self.name!r} takes no options, got {sorted(options)}; remove them",
                    field="backbone_options",
                )
            return self.factory()
        try:
            parsed = self.options(**options)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            allowed = ", ".join(sorted(self.options.model_fields)) or "none"
            raise ConfigError(
                f"backbone {self.name!r} option {where!r}: {first['msg']}; its options are: {allowed}",
                field="backbone_options",
            ) from None
        return self.factory(**parsed.model_dump())
