"""The architecture of a VideoCrafter model, as plain settings, and the released variants.

The names follow VideoCrafter's own configuration files (``configs/inference_t2v_*.yaml``) so a
reader can hold the two side by side; every field is documented where it is not obvious. A
variant is the architecture plus the defaults FIFO runs it with:

    variant             checkpoint                                   size      differences
    videocrafter2       VideoCrafter/VideoCrafter2 model.ckpt        320x512   temporal convs, fps, scale 0.7
    videocrafter1       VideoCrafter/Text2Video-512 model.ckpt       320x512   relative positions, no fps
    videocrafter1-1024  VideoCrafter/Text2Video-1024 model.ckpt      576x1024  relative positions, fps, scale 0.3
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UNetConfig(_Settings):
    """The 3D U-Net (``model.diffusion_model.*``)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = Field(default=320, description="channels of the first level; multiple of 32")
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = Field(
        default=(4, 2, 1), description="downsampling factors (1, 2, 4, ...) whose levels have transformers"
    )
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = Field(default=1024, description="width of the text embedding")
    use_linear: bool = Field(default=True, description="linear (not 1x1 conv) projections in the transformers")
    temporal_conv: bool = Field(default=True, description="four (3,1,1) Conv3d per ResBlock, keys 'temopral_conv'")
    temporal_length: int = Field(default=16, description="frames the relative position tables span")
    relative_position: bool = Field(default=False, description="relative position tables in temporal attention")
    addition_attention: bool = Field(default=True, description="the 'init_attn' temporal transformer after the first conv")
    fps_cond: bool = Field(default=True, description="an fps embedding added to the time embedding")


class VaeConfig(_Settings):
    """The image autoencoder (``first_stage_model.*``), applied to each frame on its own."""

    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    scale_factor: float = Field(default=0.18215, description="latents are the VAE's, times this")

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


class TextConfig(_Settings):
    """The OpenCLIP text tower (``cond_stage_model.model.*``); ViT-H-14 by default."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 1024
    heads: int = 16
    layers: int = 24
    embed_dim: int = Field(default=1024, description="width of text_projection's output (stored, unused)")
    skip_last_layers: int = Field(default=1, description="1 = 'penultimate': the last block is not run")


class ScheduleConfig(_Settings):
    """The training noise schedule (``linear`` betas in VideoCrafter's naming are linear in sqrt)."""

    timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012
    use_scale: bool = Field(default=False, description="rescale x0 by scale_arr[t] in the forward process")
    scale_a: float = 1.0
    scale_b: float = 0.3
    mid_step: int = 400
    fix_scale_bug: bool = Field(
        default=False, description="False stores a scale_arr of timesteps + mid_step entries (only the first timesteps are used)"
    )


class VideoCrafterArchitecture(_Settings):
    """Everything needed to build a model whose weights a checkpoint holds."""

    unet: UNetConfig = UNetConfig()
    vae: VaeConfig = VaeConfig()
    text: TextConfig = TextConfig()
    schedule: ScheduleConfig = ScheduleConfig()


VIDEOCRAFTER2 = VideoCrafterArchitecture(
    schedule=ScheduleConfig(use_scale=True, scale_b=0.7),
)

VIDEOCRAFTER1_512 = VideoCrafterArchitecture(
    unet=UNetConfig(temporal_conv=False, relative_position=True, fps_cond=False),
)

VIDEOCRAFTER1_1024 = VideoCrafterArchitecture(
    unet=UNetConfig(temporal_conv=False, relative_position=True, fps_cond=True),
    schedule=ScheduleConfig(use_scale=True, fix_scale_bug=True),
)

ARCHITECTURES: dict[str, VideoCrafterArchitecture] = {
    "videocrafter2": VIDEOCRAFTER2,
    "videocrafter1": VIDEOCRAFTER1_512,
    "videocrafter1-1024": VIDEOCRAFTER1_1024,
}

# A few-hundred-kilobyte model of VideoCrafter2's layout, for tests and CPU smoke runs: every kind of
# layer is present (temporal convs, init_attn, fps embedding, both transformers, a downsampling).
TINY_VIDEOCRAFTER2 = VideoCrafterArchitecture(
    unet=UNetConfig(
        model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
        num_head_channels=16, context_dim=32, temporal_length=4,
    ),
    vae=VaeConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1),
    text=TextConfig(width=32, heads=2, layers=3, embed_dim=32),
    schedule=VIDEOCRAFTER2.schedule,
)

# The same with VideoCrafter1's temporal layers (relative positions, no temporal convs, no fps).
TINY_VIDEOCRAFTER1 = TINY_VIDEOCRAFTER2.model_copy(
    update={
        "unet": TINY_VIDEOCRAFTER2.unet.model_copy(update={"temporal_conv": False, "relative_position": True, "fps_cond": False}),
        "schedule": VIDEOCRAFTER1_512.schedule,
    }
)
