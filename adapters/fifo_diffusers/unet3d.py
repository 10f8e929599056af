"""zeroscope v2 and ModelScope text-to-video: ``UNet3DConditionModel`` + SD ``AutoencoderKL`` + CLIP.

Loads a diffusers ``TextToVideoSDPipeline`` folder or hub id (subfolders ``unet``, ``vae``,
``text_encoder``, ``tokenizer``, ``scheduler``), or components given one by one. The U-Net takes one
timestep per sample; :mod:`fifo_diffusers.timestep_shim` gives each frame its own. The VAE works on
single frames, so every latent frame decodes to one video frame, with no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch

from fifo_core.backbone import BackboneDefaults, StatelessDecoder
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.errors import ConfigError
from fifo_core.schedule import NoiseSchedule
from fifo_diffusers.common import (
    ClipPromptEncoder,
    ComponentLoader,
    DiffusersOptions,
    decode_sd_frame,
    encode_sd_frames,
    place,
    require,
    resolve_device,
    resolve_dtype,
    schedule_from_scheduler,
    stack_conditioning,
)
from fifo_diffusers.timestep_shim import PerFrameTimeEmbedding

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

class UNet3DBackbone:
    """FIFO backbone over a ``UNet3DConditionModel``; build it with :meth:`load` or directly from
    components (benchmarks build random-weight ones)."""

    def __init__(
        self,
        *,
        unet: Any,
        vae: Any,
        prompt_encoder: Callable[[str], torch.Tensor],
        schedule: NoiseSchedule,
        defaults: BackboneDefaults,
        device: torch.device,
        dtype: torch.dtype,
        compile: CompileMode = "auto",
        fp8: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.unet = place(unet, device, dtype)
        self.vae = place(vae, device, torch.float32)
        self.shim = PerFrameTimeEmbedding(self.unet)
        self.denoiser = CompiledDenoiser(self.unet, compile, device, fp8=fp8, channels_last=channels_last)
        self.prompt_encoder = prompt_encoder
        self.schedule = schedule
        self.defaults = defaults
        self.device = device
        self.dtype = dtype
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> UNet3DBackbone:
        parsed = DiffusersOptions.model_validate(options)
        diffusers, transformers = require("diffusers"), require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device)
        loader = ComponentLoader(parsed, COMPONENTS)
        scheduler = loader.scheduler()
        return cls(
            unet=loader.load("unet", diffusers.UNet3DConditionModel, torch_dtype=dtype),
            vae=loader.load("vae", diffusers.AutoencoderKL, torch_dtype=torch.float32),
            prompt_encoder=ClipPromptEncoder(
                loader.load("tokenizer", transformers.AutoTokenizer),
                loader.load("text_encoder", transformers.CLIPTextModel, torch_dtype=dtype),
                device,
                dtype,
            ),
            schedule=schedule_from_scheduler(scheduler),
            defaults=defaults,
            device=device,
            dtype=dtype,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = self.vae_scale
        if height % factor or width % factor:
            raise ConfigError(f"height and width must be multiples of {factor}, got {height}x{width}", field="height")
        return (self.unet.config.in_channels, height // factor, width // factor)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.prompt_encoder(prompt)

    @torch.no_grad()
    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[torch.Tensor]) -> torch.Tensor:
        """Noise prediction ``'b c f h w'``; ``timesteps`` ``'b f'`` reach the ResNets frame by frame."""
        timesteps = timesteps.to(self.device, torch.float32)
        with self.shim.active(timesteps):
            return self.denoiser(
                latents.to(self.device, self.dtype),
                timesteps[:, 0],
                encoder_hidden_states=self.encoder_states(conditioning, latents.shape[2]),
                return_dict=False,
            )[0]

    def encoder_states(self, conditioning: Sequence[torch.Tensor], frames: int) -> torch.Tensor:
        """Prompt states ``'b L d'``: UNet3DConditionModel repeats them over the frames itself."""
        return stack_conditioning(conditioning).to(self.dtype)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> np.ndarray:
        """One latent frame ``'c h w'`` to one RGB frame."""
        return decode_sd_frame(self.vae, latent)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 h w'`` in ``[-1, 1]`` to latents ``'t c h w'`` (``--init-video``)."""
        return encode_sd_frames(self.vae, frames)

