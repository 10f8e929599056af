"""Each diffusers backbone's defaults and options: cheap to import, so ``fifo-diffusion backbones``
lists them without loading diffusers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fifo_core.backbone import BackboneDefaults
from fifo_diffusers.common import DiffusersOptions, DType

# -- zeroscope / ModelScope (UNet3DConditionModel) -------------------------------------------

ZEROSCOPE_DEFAULTS = BackboneDefaults(
    height=320, width=576, window=24, partitions=4, lookahead=True, sampler="ddim", eta=1.0,
    guidance_scale=9.0, fps=8.0, timestep_spacing="trailing", frames_per_latent=1,
)
MODELSCOPE_DEFAULTS = BackboneDefaults(
    height=256, width=256, window=16, partitions=4, lookahead=True, sampler="ddim", eta=1.0,
    guidance_scale=9.0, fps=8.0, timestep_spacing="trailing", frames_per_latent=1,
)


class ZeroscopeOptions(DiffusersOptions):
    model: str = Field(default="cerspense/zeroscope_v2_576w", description="TextToVideoSDPipeline id or folder")


class ModelScopeOptions(DiffusersOptions):
    model: str = Field(default="ali-vilab/text-to-video-ms-1.7b", description="TextToVideoSDPipeline id or folder")


# -- Wan 2.1 (WanTransformer3DModel, AutoencoderKLWan) ---------------------------------------

# window 21 latent frames = the 81 video frames Wan 2.1 is trained on; each latent after the first
# decodes to 4 video frames.
WAN_1_3B_DEFAULTS = BackboneDefaults(
    height=480, width=832, window=21, partitions=4, lookahead=True, sampler="euler", eta=0.0,
    guidance_scale=5.0, fps=16.0, timestep_spacing="trailing", frames_per_latent=4,
)
WAN_14B_DEFAULTS = BackboneDefaults(
    height=720, width=1280, window=21, partitions=4, lookahead=True, sampler="euler", eta=0.0,
    guidance_scale=5.0, fps=16.0, timestep_spacing="trailing", frames_per_latent=4,
)


class WanOptions(DiffusersOptions):
    flow_shift: float | None = Field(
        default=None, gt=0, description="sigma shift; default: the scheduler config's flow_shift (Wan suggests 3 at 480p, 5 at 720p)"
    )
    max_sequence_length: int = Field(default=512, ge=1, description="T5 tokens per prompt")
    vae_dtype: DType = Field(default="float32", description="precision of the VAE (Wan keeps it in float32)")


class Wan13BOptions(WanOptions):
    model: str = Field(default="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", description="WanPipeline id or folder")


class Wan14BOptions(WanOptions):
    model: str = Field(default="Wan-AI/Wan2.1-T2V-14B-Diffusers", description="WanPipeline id or folder")


# -- AnimateDiff (UNetMotionModel = SD 1.5 U-Net + MotionAdapter) ----------------------------

ANIMATEDIFF_DEFAULTS = BackboneDefaults(
    height=512, width=512, window=16, partitions=4, lookahead=True, sampler="ddim", eta=1.0,
    guidance_scale=7.5, fps=8.0, timestep_spacing="trailing", frames_per_latent=1,
)


class AnimateDiffOptions(DiffusersOptions):
    model: str = Field(
        default="emilianJR/epiCRealism",
        description="Stable Diffusion 1.5 pipeline id or folder, or a saved AnimateDiffPipeline folder",
    )
    motion_adapter: str | None = Field(
        default="guoyww/animatediff-motion-adapter-v1-5-2",
        description="MotionAdapter id or folder; ignored when the model's unet is already a UNetMotionModel "
        "(None: the pipeline's motion_adapter subfolder)",
    )
    beta_schedule: Literal["model", "linear", "scaled_linear"] = Field(
        default="linear",
        description="AnimateDiff's motion modules were trained with linear betas (0.00085..0.012); 'model' keeps "
        "the scheduler config of the pipeline",
    )


# -- Latte-1 (LatteTransformer3DModel, SD AutoencoderKL, T5) --------------------------------

# window 16 = Latte-1's video_length (its temporal position embedding has exactly 16 entries);
# DDPM as in the paper's Open-Sora Plan (Latte-based) runs.
LATTE_DEFAULTS = BackboneDefaults(
    height=512, width=512, window=16, partitions=4, lookahead=True, sampler="ddpm", eta=1.0,
    guidance_scale=7.5, fps=8.0, timestep_spacing="trailing", frames_per_latent=1,
)


class LatteOptions(DiffusersOptions):
    model: str = Field(default="maxin-cn/Latte-1", description="LattePipeline id or folder")
    max_sequence_length: int = Field(default=120, ge=1, description="T5 tokens per prompt (LattePipeline uses 120)")


# -- LTX-Video 0.9 (LTXVideoTransformer3DModel, AutoencoderKLLTXVideo, T5) ------------------

# window 16 latent frames = 121 video frames (1 + 8 * 15), a length LTX-Video 0.9 is made for;
# 704x480 is its native resolution; guidance 3 and 24 fps as in its model card.
LTX_DEFAULTS = BackboneDefaults(
    height=480, width=704, window=16, partitions=4, lookahead=True, sampler="euler", eta=0.0,
    guidance_scale=3.0, fps=24.0, timestep_spacing="trailing", frames_per_latent=8,
)


class LTXOptions(DiffusersOptions):
    model: str = Field(default="Lightricks/LTX-Video", description="LTXPipeline id or folder")
    flow_shift: float | None = Field(
        default=None, gt=0,
        description="sigma shift; required when the scheduler shifts by resolution (use_dynamic_shifting, as LTX-Video's does)",
    )
    max_sequence_length: int = Field(default=128, ge=1, description="T5 tokens per prompt (LTXPipeline uses 128)")
    frame_rate: float = Field(default=24.0, gt=0, description="frame rate the rotary position embedding is scaled for")
    vae_dtype: DType = Field(default="float32", description="precision of the VAE")
    decode_context: int = Field(default=2, ge=1, description="earlier latents decoded with each chunk (the decoder is not causal)")
    decode_lookahead: int = Field(default=2, ge=0, description="later latents decoded with each chunk (output waits for them)")
    decode_chunk: int = Field(default=4, ge=1, description="new latents decoded per VAE call")
