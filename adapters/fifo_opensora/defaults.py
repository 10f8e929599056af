"""Open-Sora Plan v1.1's defaults and options: cheap to import, so ``fifo-diffusion backbones`` lists
them without loading diffusers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults
from fifo_core.compiled import CHANNELS_LAST_DESCRIPTION, COMPILE_DESCRIPTION, FP8_DESCRIPTION, CompileMode
from fifo_diffusers.common import DType

Variant = Literal["65x512x512", "221x512x512"]

# The paper's settings (REFERENCE.md section 3): the window is the model's whole temporal position
# table (17 latent frames = 65 video frames, 56 = 221); DDPM; guidance 7.5; 24 fps. Each latent after
# the first decodes to 4 video frames.
OPENSORA_65_DEFAULTS = BackboneDefaults(
    height=512, width=512, window=17, partitions=8, lookahead=True, sampler="ddpm", eta=1.0,
    guidance_scale=7.5, fps=24.0, timestep_spacing="trailing", frames_per_latent=4,
)
OPENSORA_221_DEFAULTS = BackboneDefaults(
    height=512, width=512, window=56, partitions=4, lookahead=True, sampler="ddpm", eta=1.0,
    guidance_scale=7.5, fps=24.0, timestep_spacing="trailing", frames_per_latent=4,
)


class OpenSoraPlanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="LanguageBind/Open-Sora-Plan-v1.1.0",
        description="folder in the released layout (65x512x512/, 221x512x512/, vae/) or its hub id",
    )
    variant: Variant = Field(default="65x512x512", description="which released transformer to load")
    text_encoder: str = Field(
        default="DeepFloyd/t5-v1_1-xxl", description="T5 encoder folder or hub id, with its tokenizer files"
    )
    dtype: DType = Field(default="auto", description="transformer and T5 precision; auto: float16 on CUDA, float32 on CPU")
    vae_dtype: DType = Field(default="auto", description="CausalVAE precision; auto: float16 on CUDA, float32 on CPU")
    device: str = Field(default="auto", description="torch device; auto: cuda when available, else cpu")
    max_sequence_length: int = Field(default=300, ge=1, description="T5 tokens per prompt (the released pipeline uses 300)")
    decode_context: int = Field(default=4, ge=1, description="earlier latents decoded with each chunk (see docs/adapters/opensora-plan.md)")
    decode_chunk: int = Field(default=4, ge=1, description="new latents decoded per VAE call (output waits for them)")
    decode_lookahead: int = Field(default=0, ge=0, description="later latents decoded with each chunk (output waits for them)")
    revision: str | None = None
    local_files_only: bool = Field(default=False, description="never reach the network")
    compile: CompileMode = Field(default="auto", description=COMPILE_DESCRIPTION)
    fp8: bool = Field(default=False, description=FP8_DESCRIPTION)
    channels_last: bool = Field(default=False, description=CHANNELS_LAST_DESCRIPTION)


class OpenSoraPlan221Options(OpenSoraPlanOptions):
    variant: Variant = Field(default="221x512x512", description="which released transformer to load")
