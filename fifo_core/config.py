"""Run configuration, parsed and validated once at the edge (command line, file or Python).

``RunConfig`` holds what the user asked for; fields left ``None`` take the backbone's defaults in
:meth:`RunConfig.resolve`, which checks how they fit together and returns :class:`RunSettings`,
the one object the sampler runs with.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fifo_core.backbone import BackboneDefaults
from fifo_core.errors import ConfigError
from fifo_core.partition import QueueLayout
from fifo_core.schedule import FlowMatchingSchedule, NoiseSchedule, TimestepSpacing
from fifo_core.starts import ClipStart, RampStart, StartName, resolve_start
from fifo_core.steps import SamplerName, sampler_eta

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Bounds that catch typos and overflow, not taste: published models use guidance up to about 20,
# and an infinite or 1e308 scale turns every frame black. DDIM's eta above 1 asks for more noise
# than the step removes (the square root in its sigma goes negative).
MAX_GUIDANCE = 100.0
MAX_FPS = 1000.0
MAX_SIDE = 8192  # above 8K video; larger sides are typos that would exhaust any machine's memory


class TimedPrompt(BaseModel):
    """A prompt in force from output frame ``start`` on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int = Field(ge=0, description="first output frame the prompt applies to")
    prompt: str = Field(min_length=1)


class PromptTimeline(BaseModel):
    """Prompts over time; the first starts at frame 0. A frame entering the queue is tied to the
    prompt in force at its position in the video, so scenes change smoothly (paper, appendix E.1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[TimedPrompt, ...] = Field(min_length=1)

    @field_validator("entries")
    @classmethod
    def _ordered_from_zero(cls, entries: tuple[TimedPrompt, ...]) -> tuple[TimedPrompt, ...]:
        entries = tuple(sorted(entries, key=lambda entry: entry.start))
        if entries[0].start != 0:
            raise ValueError(f"the first prompt must start at frame 0, not {entries[0].start}")
        starts = [entry.start for entry in entries]
        if len(set(starts)) != len(starts):
            raise ValueError("two prompts start at the same frame; give each a distinct start")
        return entries

    @classmethod
    def single(cls, prompt: str) -> PromptTimeline:
        return cls(entries=(TimedPrompt(start=0, prompt=prompt),))

    def prompt_at(self, frame: int) -> str:
        current = self.entries[0].prompt
        for entry in self.entries:
            if entry.start > frame:
                break
            current = entry.prompt
        return current

    @property
    def prompts(self) -> list[str]:
        return [entry.prompt for entry in self.entries]


class RunConfig(BaseModel):
    """Everything a run needs. ``None`` means "the backbone's default"."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | PromptTimeline = Field(description="text prompt, or a timeline of prompts")
    negative_prompt: str = Field(default="", description="prompt for the unconditional half of guidance")
    backbone: str | None = Field(
        default=None, min_length=1,
        description="registered backbone name; default: $FIFO_DIFFUSION_BACKBONE, else the backbone a plugin declares the default",
    )
    backbone_options: dict[str, Any] = Field(default_factory=dict, description="backbone-specific options")
    frames: int | None = Field(default=None, ge=1, description="video frames to generate; None runs until stopped")
    partitions: int | None = Field(default=None, ge=1, description="latent partitions n")
    window: int | None = Field(default=None, ge=1, description="window f in latent frames")
    lookahead: bool | None = Field(default=None, description="lookahead denoising")
    guidance_scale: float | None = Field(default=None, ge=0, le=MAX_GUIDANCE, allow_inf_nan=False, description="classifier-free guidance; 1 disables it")
    sampler: SamplerName | None = None
    eta: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False, description="DDIM stochasticity (ddim sampler only)")
    timestep_spacing: TimestepSpacing | None = None
    seed: int = Field(default=0, ge=0, description="the seed alone determines the output")
    fps: float | None = Field(default=None, gt=0, le=MAX_FPS, allow_inf_nan=False, description="frame rate of the sinks")
    height: int | None = Field(default=None, gt=0, le=MAX_SIDE, description="video height in pixels")
    width: int | None = Field(default=None, gt=0, le=MAX_SIDE, description="video width in pixels")
    start: StartName | None = Field(
        default=None, description="queue start: 'ramp' (pure noise) or 'clip' (one ordinary clip first, as the reference); default: the backbone's"
    )
    start_guidance_scale: float | None = Field(
        default=None, ge=0, le=MAX_GUIDANCE, allow_inf_nan=False,
        description="guidance for the first clip of the 'clip' start (it sets the scene the queue continues); default: the backbone's, else guidance_scale",
    )
    max_batch: int | None = Field(default=None, ge=1, description="most window rows per model call")
    overlap_decode: bool | None = Field(
        default=None, description="decode frames on a thread of their own, overlapping denoising; default: on for CUDA backbones"
    )
    init_video: str | None = Field(
        default=None, min_length=1, description="video file whose last frames the new video continues (the backbone encodes it)"
    )
    init_image: str | None = Field(default=None, min_length=1, description="image the new video starts from (the backbone encodes it)")
    include_init: bool = Field(default=False, description="write the init video's (or image's) own frames first in the output")
    sinks: list[str] = Field(default_factory=list, description="output targets: file.mp4, folder/, rtmp://...")
    overwrite: bool = Field(default=False, description="replace an existing output file instead of refusing it")

    @field_validator("prompt", mode="before")
    @classmethod
    def _timeline_from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return PromptTimeline(entries=tuple(TimedPrompt(**entry) if isinstance(entry, dict) else entry for entry in value))
        if isinstance(value, str) and not value.strip():
            raise ValueError("the prompt is empty; describe the video to generate")
        return value

    @field_validator("frames", "partitions", "window", "seed", "height", "width", "max_batch", mode="before")
    @classmethod
    def _counts_are_not_booleans(cls, value: Any) -> Any:
        # pydantic reads true as 1; a count written as true is a mistake, not one frame
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {str(value).lower()}")
        return value

    @field_validator("sinks")
    @classmethod
    def _sinks_distinct(cls, sinks: list[str]) -> list[str]:
        repeated = sorted({sink for sink in sinks if sinks.count(sink) > 1})
        if repeated:
            from fifo_core.sink import redact_target

            raise ValueError(f"the sink target {redact_target(repeated[0])!r} is given twice; each --sink needs its own target")
        return sinks

    @property
    def timeline(self) -> PromptTimeline:
        return self.prompt if isinstance(self.prompt, PromptTimeline) else PromptTimeline.single(self.prompt)

    def resolve(self, defaults: BackboneDefaults, timeline: PromptTimeline | None = None) -> RunSettings:
        """Fill unset fields from the backbone's defaults and check how they fit together;
        ``timeline`` replaces the prompt (a plugin may have turned it into one)."""
        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        layout = QueueLayout(
            window=pick(self.window, defaults.window),
            partitions=pick(self.partitions, defaults.partitions),
            lookahead=pick(self.lookahead, defaults.lookahead),
        )
        sampler = pick(self.sampler, defaults.sampler)
        if self.eta is not None and sampler != "ddim":
            raise ConfigError(f"eta applies to the ddim sampler only, and the sampler is {sampler!r}; drop --eta", field="eta")
        start = pick(self.start, defaults.start.kind)
        if self.start_guidance_scale is not None and start != "clip":
            raise ConfigError(
                f"start guidance applies to the 'clip' start, and this run starts with {start!r}; add --start clip or drop --start-guidance",
                field="start_guidance_scale",
            )
        guidance_scale = pick(self.guidance_scale, defaults.guidance_scale)
        init = self._init_clip()
        if init is not None and (self.start is not None or self.start_guidance_scale is not None):
            raise ConfigError(
                f"--{init.kind.replace('_', '-')} starts the queue from the given {init.kind.removeprefix('init_')}, so --start and "
                "--start-guidance do not apply; drop them",
                field="start",
            )
        return RunSettings(
            timeline=self.timeline if timeline is None else timeline,
            negative_prompt=self.negative_prompt,
            layout=layout,
            guidance_scale=guidance_scale,
            sampler=sampler,
            eta=sampler_eta(sampler, pick(self.eta, defaults.eta)),
            timestep_spacing=pick(self.timestep_spacing, defaults.timestep_spacing),
            start=resolve_start(start, defaults.start, self.start_guidance_scale, guidance_scale),
            seed=self.seed,
            max_batch=self.max_batch,
            overlap_decode=self.overlap_decode,
            frames=self.frames,
            fps=pick(self.fps, defaults.fps),
            height=pick(self.height, defaults.height),
            width=pick(self.width, defaults.width),
            init=init,
        )

    def _init_clip(self) -> InitClip | None:
        if self.init_video is not None and self.init_image is not None:
            raise ConfigError("give --init-video or --init-image, not both: the video continues one of them", field="init_video")
        if self.init_video is None and self.init_image is None:
            if self.include_init:
                raise ConfigError("--include-init writes the init clip's frames first, and no --init-video or --init-image is given", field="include_init")
            return None
        kind = "init_video" if self.init_video is not None else "init_image"
        return InitClip(kind=kind, path=self.init_video or self.init_image or "", include=self.include_init)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> RunConfig:
        """Read a TOML or JSON file; ``overrides`` (e.g. command-line flags) win over it."""
        return cls.parse(load_config_file(path) | overrides)

    @classmethod
    def parse(cls, values: dict[str, Any]) -> RunConfig:
        """Validate ``values``; a problem becomes one :class:`ConfigError` naming the field."""
        try:
            return cls(**values)
        except ValidationError as error:
            raise config_error(error) from None


@dataclass(frozen=True)
class InitClip:
    """A video or image the run continues (``--init-video``/``--init-image``); ``include``: its
    own frames come first in the output."""

    kind: str  # "init_video" or "init_image"
    path: str
    include: bool


@dataclass(frozen=True)
class RunSettings:
    """A run's settings with every default filled in and checked together: what the sampler runs
    with. ``eta`` is the DDIM eta the sampler means (1 for ``ddpm``, 0 for ``euler``); ``start``
    carries its own settings (the clip start's guidance)."""

    timeline: PromptTimeline
    negative_prompt: str
    layout: QueueLayout
    guidance_scale: float
    sampler: SamplerName
    eta: float
    timestep_spacing: TimestepSpacing
    start: RampStart | ClipStart
    seed: int
    max_batch: int | None
    overlap_decode: bool | None
    frames: int | None
    fps: float
    height: int
    width: int
    init: InitClip | None = None

    @property
    def start_guidance_scale(self) -> float | None:
        """The clip start's guidance (``None`` for the ramp start)."""
        return self.start.guidance_scale if isinstance(self.start, ClipStart) else None

    def check_schedule(self, schedule: NoiseSchedule) -> None:
        """Refuse a sampler the backbone's schedule cannot run (known once the backbone is loaded)."""
        flow = isinstance(schedule, FlowMatchingSchedule)
        if self.sampler == "euler" and not flow:
            raise ConfigError(
                "the euler sampler is for flow-matching backbones; this backbone has a discrete schedule, "
                "use --sampler ddim or ddpm",
                field="sampler",
            )
        if flow and self.eta > 0:
            raise ConfigError(
                f"sampler {self.sampler!r} with eta {self.eta} is stochastic, which needs a discrete schedule; "
                "this backbone is flow matching: use --sampler euler",
                field="sampler",
            )


_FIXES = {
    "frames": "pass a positive count, or leave --frames out to run until stopped",
    "partitions": "pass a positive whole number with --n",
    "window": "pass a positive whole number with --f",
    "seed": "pass a whole number >= 0 with --seed",
    "fps": f"pass a positive frame rate up to {MAX_FPS:g} with --fps",
    "guidance_scale": f"pass a number from 0 to {MAX_GUIDANCE:g} with --guidance (1 turns guidance off)",
    "start_guidance_scale": f"pass a number from 0 to {MAX_GUIDANCE:g} with --start-guidance",
    "eta": "pass a number from 0 (deterministic DDIM) to 1 (DDPM-like) with --eta",
    "sinks": "give each output once with --sink",
    "height": f"pass a height from 1 to {MAX_SIDE} pixels with --height (the backbone's default when left out)",
    "width": f"pass a width from 1 to {MAX_SIDE} pixels with --width (the backbone's default when left out)",
    "prompt": "pass the prompt as the first argument",
}


def config_error(error: ValidationError) -> ConfigError:
    """One readable line for the first problem pydantic found."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"] if not str(part).startswith("function-")]
    field = location[0] if location else None
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    if field is not None and not isinstance(given, (dict, list)) and first["type"] != "missing":
        message = f"{message} (got {given!r})"
    if first["type"] == "extra_forbidden":
        message = f"unknown setting; valid settings are: {', '.join(RunConfig.model_fields)}"
    fix = _FIXES.get(field or "")
    return ConfigError(f"{message}; {fix}" if fix else message, field=".".join(location) or None)


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {error.strerror}", field="config") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() == ".json":
            values = json.loads(text)
            if not isinstance(values, dict):
                raise ConfigError(f"{path} must hold a JSON object of settings", field="config")
            return values
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is not valid {path.suffix[1:].upper()}: {error}", field="config") from None
    raise ConfigError(f"configuration files must end in .toml or .json, got {str(path)!r}", field="config")


def json_schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()
