"""How the queue starts: from pure noise (``ramp``) or from one ordinary clip (``clip``).

A start is both a setting (``BackboneDefaults.start``, chosen per run with ``RunConfig.start``)
and what fills the queue before the first iteration; its own settings live in it (the clip's
guidance scale), so nothing else needs to know them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.noise import NoiseStreams
from fifo_core.partition import QueueLayout
from fifo_core.queue import LatentQueue
from fifo_core.schedule import LevelGrid, add_noise

StartName = Literal["ramp", "clip"]

# One step of an ordinary clip ``'f c h w'`` whose frames all sit at ``level``, guided with
# ``guidance_scale``: ``clip_step(clip, level, guidance_scale)`` returns it one level down.
ClipStep = Callable[[torch.Tensor, int, float], torch.Tensor]


class RampStart(BaseModel):
    """Every slot at pure noise; the warm-up is the ordinary loop: the head moves at once, each
    later slot one iteration later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ramp"] = "ramp"

    def fill(self, layout: QueueLayout, grid: LevelGrid, noise: NoiseStreams, clip_step: ClipStep) -> LatentQueue:
        context, levels = layout.context, layout.num_levels
        latents = [noise.draw("context", slot) for slot in range(context)]
        latents += [noise.frame(frame) for frame in range(levels)]
        return LatentQueue(
            latents=torch.stack(latents),
            levels=torch.full((context + levels,), levels, dtype=torch.long),
            frame_ids=torch.cat([torch.arange(-context, 0), torch.arange(levels)]),
            context=context,
            num_levels=levels,
        )


class ClipStart(BaseModel):
    """The reference implementation's start: sample one ordinary clip of ``f`` frames, all at the
    same level, then forward-noise it along the diagonal. Slots before the last ``f`` hold frame
    0 again; they get negative ids and are never handed out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["clip"] = "clip"
    guidance_scale: float | None = Field(
        default=None, ge=0, description="guidance for the first clip (it sets the scene the queue continues); None: the run's"
    )

    def fill(self, layout: QueueLayout, grid: LevelGrid, noise: NoiseStreams, clip_step: ClipStep) -> LatentQueue:
        if self.guidance_scale is None:
            raise ValueError("the clip start's guidance scale is resolved with the run's settings (RunConfig.resolve) before it runs")
        f, levels, context = layout.window, layout.num_levels, layout.context
        discarded = levels - f
        clip = torch.stack([noise.frame(frame) for frame in range(f)])  # 'f c h w'
        for level in range(levels, 0, -1):
            clip = clip_step(clip, level, self.guidance_scale)
        frame_ids = torch.arange(-discarded, f)
        sources = clip[frame_ids.clamp(min=0)]
        slot_levels = torch.arange(1, levels + 1)
        # fresh draws: clip frames were sampled from ('frame', k), and reusing that noise would tie
        # the forward noise to their content
        diagonal = torch.stack([noise.draw("diagonal", slot) for slot in range(levels)])
        noised = add_noise(sources, diagonal, grid.signal[slot_levels], grid.noise[slot_levels])
        latents = torch.cat([clip[:1].expand(context, *clip.shape[1:]), noised])
        return LatentQueue(
            latents=latents.contiguous(),
            levels=torch.cat([torch.zeros(context, dtype=torch.long), slot_levels]),
            frame_ids=torch.cat([torch.arange(-discarded - context, -discarded), frame_ids]),
            context=context,
            num_levels=levels,
        )


def continuation_queue(layout: QueueLayout, grid: LevelGrid, noise: NoiseStreams, clip: torch.Tensor) -> LatentQueue:
    """The queue that continues ``clip``, latents ``'t c h w'`` of a video (or an image) the
    backbone encoded, ending with the frame the new video follows.

    The lookahead slots hold the clip's last latents, clean (the context the first new frames
    are denoised against; the first latent again when the clip is shorter). Every denoised slot
    starts from the clip's last latent, forward-noised along the diagonal to its level (slot
    ``context + i`` at level ``i + 1``) with fresh draws: the first new frame comes out almost as
    the clip ends, and each later one, noisier at the start, has more room to move on. Frame ids
    start at 0 with the first new frame; nothing is discarded.
    """
    context, levels = layout.context, layout.num_levels
    if clip.ndim != 4 or clip.shape[0] < 1:
        raise ValueError(f"the clip to continue must be latents 't c h w' with t >= 1, got shape {tuple(clip.shape)}")
    last = clip[-1]
    slot_levels = torch.arange(1, levels + 1)
    diagonal = torch.stack([noise.draw("continue", slot) for slot in range(levels)]).to(clip.device)
    noised = add_noise(last.float().expand(levels, *last.shape), diagonal.float(), grid.signal[slot_levels], grid.noise[slot_levels])
    kept = (clip[-context:] if context else clip[:0]).float()
    if kept.shape[0] < context:
        kept = torch.cat([kept[:1].expand(context - kept.shape[0], *last.shape), kept])
    return LatentQueue(
        latents=torch.cat([kept, noised]).float().contiguous(),
        levels=torch.cat([torch.zeros(context, dtype=torch.long), slot_levels]),
        frame_ids=torch.cat([torch.arange(-context, 0), torch.arange(levels)]),
        context=context,
        num_levels=levels,
    )


QueueStart = Annotated[Union[RampStart, ClipStart], Field(discriminator="kind")]


def start_from(value: object) -> object:
    """A start given by name (``"ramp"``, ``"clip"``) as the start's settings; others unchanged."""
    return {"kind": value} if isinstance(value, str) else value


def resolve_start(name: StartName, default: RampStart | ClipStart, guidance_scale: float | None, run_guidance_scale: float) -> RampStart | ClipStart:
    """The run's start: ``name`` with the clip's guidance from the run (``guidance_scale``), else
    the backbone's ``default`` start, else the run's guidance scale."""
    if name == "ramp":
        return RampStart()
    backbone_guidance = default.guidance_scale if isinstance(default, ClipStart) else None
    if guidance_scale is None:
        guidance_scale = run_guidance_scale if backbone_guidance is None else backbone_guidance
    return ClipStart(guidance_scale=guidance_scale)
