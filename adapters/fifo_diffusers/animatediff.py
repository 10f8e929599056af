"""AnimateDiff: a Stable Diffusion 1.5 U-Net with a ``MotionAdapter``, as a ``UNetMotionModel``.

Loads, as users have them, either a Stable Diffusion 1.5 pipeline (id or folder) plus a motion
adapter (``motion_adapter`` option), or a saved ``AnimateDiffPipeline`` folder whose ``unet`` is
already a ``UNetMotionModel``. The U-Net embeds one timestep per sample; like zeroscope, it gets
per-frame embeddings from :mod:`fifo_diffusers.timestep_shim`. The SD VAE decodes frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fifo_core.backbone import BackboneDefaults
from fifo_core.schedule import DiscreteSchedule
from fifo_diffusers.common import (
    ClipPromptEncoder,
    ComponentLoader,
    require,
    resolve_device,
    resolve_dtype,
    schedule_from_scheduler,
    stack_conditioning,
)
from fifo_diffusers.defaults import AnimateDiffOptions
from fifo_diffusers.unet3d import UNet3DBackbone

COMPONENTS = ("unet", "motion_adapter", "vae", "text_encoder", "tokenizer", "scheduler")


class AnimateDiffBackbone(UNet3DBackbone):
    """Same contract as :class:`UNet3DBackbone`; only the U-Net class and its loading differ."""

    def encoder_states(self, conditioning: Sequence[torch.Tensor], frames: int) -> torch.Tensor:
        """Prompt states ``'(b f) L d'``: UNetMotionModel takes them per frame, as its pipeline
        repeats them."""
        return stack_conditioning(conditioning).to(self.dtype).repeat_interleave(frames, dim=0)

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> AnimateDiffBackbone:
        parsed = AnimateDiffOptions.model_validate(options)
        diffusers, transformers = require("diffusers"), require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device)
        loader = ComponentLoader(parsed, COMPONENTS)
        scheduler = loader.scheduler()
        return cls(
            unet=motion_unet(loader, parsed, dtype),
            vae=loader.load("vae", diffusers.AutoencoderKL, torch_dtype=torch.float32),
            prompt_encoder=ClipPromptEncoder(
                loader.load("tokenizer", transformers.AutoTokenizer),
                loader.load("text_encoder", transformers.CLIPTextModel, torch_dtype=dtype),
                device,
                dtype,
            ),
            schedule=animatediff_schedule(scheduler, parsed.beta_schedule),
            defaults=defaults,
            device=device,
            dtype=dtype,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )


def motion_unet(loader: ComponentLoader, options: AnimateDiffOptions, dtype: torch.dtype) -> Any:
    """A ``UNetMotionModel``: loaded as is, or built from the SD U-Net and the motion adapter."""
    diffusers = require("diffusers")
    source, where = loader.where("unet")
    config = diffusers.UNet2DConditionModel.load_config(
        source, **where, revision=options.revision, local_files_only=options.local_files_only
    )
    if config.get("_class_name") == "UNetMotionModel":
        return loader.load("unet", diffusers.UNetMotionModel, torch_dtype=dtype)
    unet = loader.load("unet", diffusers.UNet2DConditionModel, torch_dtype=dtype)
    if "motion_adapter" in options.components or options.motion_adapter is None:
        adapter = loader.load("motion_adapter", diffusers.MotionAdapter, torch_dtype=dtype)
    else:
        adapter = ComponentLoader(
            options.model_copy(update={"components": {"motion_adapter": options.motion_adapter}}), COMPONENTS
        ).load("motion_adapter", diffusers.MotionAdapter, torch_dtype=dtype)
    return diffusers.UNetMotionModel.from_unet2d(unet, adapter)


def animatediff_schedule(scheduler: Any, beta_schedule: str) -> DiscreteSchedule:
    if beta_schedule == "model":
        return schedule_from_scheduler(scheduler)
    config = scheduler.config
    start, end = config.get("beta_start", 0.00085), config.get("beta_end", 0.012)
    steps = int(config.get("num_train_timesteps", 1000))
    prediction = config.get("prediction_type", "epsilon")
    if beta_schedule == "linear":
        return DiscreteSchedule.linear(start, end, steps, prediction_type=prediction)
    return DiscreteSchedule.scaled_linear(start, end, steps, prediction_type=prediction)
