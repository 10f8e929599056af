"""VideoCrafter2 / VideoCrafter1 as fifo-diffusion backbones, from their original checkpoints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.compiled import CHANNELS_LAST_DESCRIPTION, COMPILE_DESCRIPTION, FP8_DESCRIPTION, ChannelsLast, CompiledDenoiser, CompileMode
from fifo_core.errors import ConfigError
from fifo_videocrafter.checkpoint import load_modules, random_modules, read_checkpoint
from fifo_videocrafter.config import ARCHITECTURES, VideoCrafterArchitecture
from fifo_videocrafter.schedule import noise_schedule

DType = Literal["float32", "float16", "bfloat16"]

_FIFO_DEFAULTS = dict(
    window=16, partitions=4, lookahead=True, sampler="ddim", eta=1.0, guidance_scale=12.0, fps=10.0
)
DEFAULTS: dict[str, BackboneDefaults] = {
    "videocrafter2": BackboneDefaults(height=320, width=512, **_FIFO_DEFAULTS),
    "videocrafter1": BackboneDefaults(height=320, width=512, **_FIFO_DEFAULTS),
    "videocrafter1-1024": BackboneDefaults(height=576, width=1024, **_FIFO_DEFAULTS),
}


class VideoCrafterOptions(BaseModel):
    """``--option KEY=VALUE`` settings of the VideoCrafter backbones."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(
        default=None, description="path to the original model.ckpt (or a .safetensors conversion, or its folder)"
    )
    device: str | None = Field(default=None, description="torch device; default cuda when available, else cpu")
    dtype: DType | None = Field(default=None, description="default float16 on cuda, float32 on cpu")
    fps: float = Field(default=8.0, gt=0, description="fps conditioning of the U-Net (FIFO uses 8; VC2's own sampler 28)")
    ignore_signal_scale: bool = Field(
        default=False,
        description="reference-compatible: step without VideoCrafter's use_scale rescaling, as the FIFO reference code does",
    )
    architecture: VideoCrafterArchitecture | str | None = Field(
        default=None, description="architecture override: a JSON file or object (default: the variant's)"
    )
    random_weights: bool = Field(default=False, description="no checkpoint: random weights, for benchmarks only")
    compile: CompileMode = Field(default="auto", description=COMPILE_DESCRIPTION)
    fp8: bool = Field(default=False, description=FP8_DESCRIPTION)
    channels_last: ChannelsLast = Field(
        default="auto",
        description=CHANNELS_LAST_DESCRIPTION + "; auto: on CUDA (the U-Net's calls 3.6% faster on an H200, docs/performance.md), off on the CPU",
    )


def _architecture(variant: str, override: VideoCrafterArchitecture | dict | str | None) -> VideoCrafterArchitecture:
    if override is None:
        return ARCHITECTURES[variant]
    if isinstance(override, VideoCrafterArchitecture):
        return override
    if isinstance(override, str):
        path = Path(override).expanduser()
        if not path.is_file():
            raise ConfigError(f"architecture file {override!r} does not exist; pass a JSON file or object", field="backbone_options.architecture")
        override = json.loads(path.read_text())
    return VideoCrafterArchitecture.model_validate(override)


class VideoCrafterBackbone:
    """Latents ``'4 h w'`` at 1/8 of the pixel size; epsilon prediction; per-frame timesteps."""

    def __init__(
        self,
        variant: str,
        checkpoint: str | None = None,
        device: str | None = None,
        dtype: DType | None = None,
        fps: float = 8.0,
        ignore_signal_scale: bool = False,
        architecture: VideoCrafterArchitecture | dict | str | None = None,
        random_weights: bool = False,
        compile: CompileMode = "auto",
        fp8: bool = False,
        channels_last: ChannelsLast = "auto",
    ) -> None:
        if variant not in ARCHITECTURES:
            raise ConfigError(f"unknown VideoCrafter variant {variant!r}; expected one of {sorted(ARCHITECTURES)}")
        self.variant = variant
        self.architecture = _architecture(variant, architecture)
        self.defaults = DEFAULTS[variant]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = getattr(torch, dtype or ("float16" if self.device.type == "cuda" else "float32"))
        self.fps = fps
        self.schedule = noise_schedule(self.architecture.schedule, ignore_signal_scale=ignore_signal_scale)
        if random_weights == (checkpoint is not None):
            raise ConfigError(
                f"{variant} needs its weights: pass --option checkpoint=/path/to/model.ckpt "
                "(or random_weights=true, without a checkpoint, to benchmark)",
                field="backbone_options.checkpoint",
            )
        if random_weights:
            modules = random_modules(self.architecture, self.device, self.dtype)
        else:
            modules = load_modules(read_checkpoint(checkpoint), self.architecture, variant)
        self.unet = modules.unet.to(self.device, self.dtype)
        self.vae = modules.vae.to(self.device, self.dtype)
        self.text_encoder = modules.text.to(self.device, self.dtype)
        self.denoiser = CompiledDenoiser(self.unet, compile, self.device, fp8=fp8, channels_last=channels_last)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        multiple = self.architecture.vae.downsampling * 2 ** (len(self.architecture.unet.channel_mult) - 1)
        if height % multiple or width % multiple:
            raise ConfigError(
                f"{self.variant} needs height and width in multiples of {multiple} pixels, got {height}x{width}; "
                f"try {self.defaults.height}x{self.defaults.width}",
                field="height",
            )
        factor = self.architecture.vae.downsampling
        return (self.architecture.unet.in_channels, height // factor, width // factor)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """Text features ``'l d'`` (77 x 1024 for ViT-H-14)."""
        return self.text_encoder.encode([prompt])[0]

    @torch.no_grad()
    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[Any]) -> torch.Tensor:
        """Noise ``'b c f h w'`` for latents ``'b c f h w'`` with timesteps ``'b f'``."""
        context = torch.stack(list(conditioning)).to(self.device)
        fps = torch.full((latents.shape[0],), self.fps, device=self.device)
        output = self.denoiser(latents.to(self.device), timesteps.to(self.device), context, fps)
        return output.to(latents.dtype)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> np.ndarray:
        """One clean latent ``'c h w'`` to an RGB frame ``'H W 3'`` uint8."""
        z = latent[None].to(self.device, self.dtype) / self.architecture.vae.scale_factor
        return to_uint8_frame(self.vae.decode(z)[0])

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 H W'`` in ``[-1, 1]`` to latents ``'t c h w'`` (``--init-video``):
        the VAE's posterior mean, scaled as :meth:`decode` expects."""
        mean = self.vae.encode_mean(frames.to(self.device, self.dtype))
        return (mean * self.architecture.vae.scale_factor).float()
