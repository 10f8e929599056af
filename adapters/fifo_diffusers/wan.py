"""Wan 2.1 text-to-video: ``WanTransformer3DModel`` + causal ``AutoencoderKLWan`` + UMT5.

Loads a diffusers ``WanPipeline`` folder or hub id (subfolders ``transformer``, ``vae``,
``text_encoder``, ``tokenizer``, ``scheduler``), or components one by one.

* Timesteps: the transformer natively takes a timestep per token ``'b (f h w)'`` (patch size
  ``(1, 2, 2)``), so each frame's timestep is repeated over its ``h w`` tokens; no shim.
* Schedule: rectified flow, sigma shift from the scheduler config's ``flow_shift`` (or the
  ``flow_shift`` option); the model predicts the velocity ``eps - x0`` (the core's ``flow``).
* Decoding: the VAE is causal in time with 4x compression. :class:`WanStreamDecoder` feeds it one
  clean latent at a time and keeps its convolution cache between calls, as a whole-clip decode
  does internally: the first latent yields 1 video frame, every later one 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch

from fifo_core.backbone import BackboneDefaults
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.errors import ConfigError, PluginError
from fifo_core.schedule import NoiseSchedule
from fifo_diffusers.common import (
    ComponentLoader,
    frames_from_video,
    place,
    require,
    resolve_device,
    resolve_dtype,
    schedule_from_scheduler,
    stack_conditioning,
)
from fifo_diffusers.defaults import WanOptions

COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


class WanStreamDecoder:
    """Causal streaming decode: latent ``'c h w'`` in, 1 (first call) or 4 frames ``'h w 3'`` out.

    Holds its own copy of the decoder's per-convolution cache (the last frames each causal
    convolution saw), so several streams over one VAE do not disturb each other.
    """

    def __init__(self, vae: Any) -> None:
        if vae.config.get("patch_size") is not None:
            raise PluginError("this Wan VAE patchifies its output (Wan 2.2); only the Wan 2.1 VAE is supported")
        self.vae = vae
        causal = type(vae.decoder.conv_in)
        self._cache: list[torch.Tensor | None] = [None] * sum(isinstance(m, causal) for m in vae.decoder.modules())
        parameter = next(vae.parameters())
        channels = vae.config.z_dim
        self._mean = torch.tensor(vae.config.latents_mean).view(channels, 1, 1).to(parameter.device, parameter.dtype)
        self._std = torch.tensor(vae.config.latents_std).view(channels, 1, 1).to(parameter.device, parameter.dtype)
        self._first = True

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        z = latent.to(self._mean.device, self._mean.dtype) * self._std + self._mean
        x = self.vae.post_quant_conv(z[None, :, None])
        video = self.vae.decoder(x, feat_cache=self._cache, feat_idx=[0], first_chunk=self._first)
        self._first = False
        return frames_from_video(video[0].clamp(-1, 1))

    def flush(self) -> list[np.ndarray]:
        return []

    # The upsampling layers mark their cache "Rep" (repeat the first frame) before they have seen one.
    _REPEAT_MARK = "Rep"

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The convolution cache (``cache.K``; ``repeat.K`` for entries marked "Rep") and whether the
        next latent is the first, for ``--state`` (:mod:`fifo_core.state`)."""
        state = {"first": torch.tensor(self._first)}
        for index, entry in enumerate(self._cache):
            if isinstance(entry, torch.Tensor):
                state[f"cache.{index}"] = entry.detach().cpu()
            elif entry == self._REPEAT_MARK:
                state[f"repeat.{index}"] = torch.tensor(True)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = self._mean.device
        self._first = bool(state["first"])
        self._cache = [
            state[f"cache.{index}"].to(device) if f"cache.{index}" in state else self._REPEAT_MARK if f"repeat.{index}" in state else None
            for index in range(len(self._cache))
        ]


class WanBackbone:
    """FIFO backbone over a ``WanTransformer3DModel``."""

    def __init__(
        self,
        *,
        transformer: Any,
        vae: Any,
        prompt_encoder: Callable[[str], torch.Tensor],
        schedule: NoiseSchedule,
        defaults: BackboneDefaults,
        device: torch.device,
        dtype: torch.dtype,
        vae_dtype: torch.dtype = torch.float32,
        compile: CompileMode = "auto",
        fp8: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.transformer = place(transformer, device, dtype)
        self.denoiser = CompiledDenoiser(self.transformer, compile, device, fp8=fp8, channels_last=channels_last)
        self.vae = place(vae, device, vae_dtype)
        self.prompt_encoder = prompt_encoder
        self.schedule = schedule
        self.defaults = defaults
        self.device = device
        self.dtype = dtype
        self.spatial_factor = int(self.vae.config.get("scale_factor_spatial", 2 ** len(self.vae.config.temperal_downsample)))
        self.patch_size = tuple(self.transformer.config.patch_size)
        if self.patch_size[0] != 1:
            raise PluginError(f"Wan transformers with a temporal patch size {self.patch_size[0]} are not supported (need 1)")

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> WanBackbone:
        parsed = WanOptions.model_validate(options)
        diffusers, transformers = require("diffusers"), require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device, cuda_default=torch.bfloat16)
        vae_dtype = resolve_dtype(parsed.vae_dtype, device)
        loader = ComponentLoader(parsed, COMPONENTS)
        scheduler = loader.scheduler()
        return cls(
            transformer=loader.load("transformer", diffusers.WanTransformer3DModel, torch_dtype=dtype),
            vae=loader.load("vae", diffusers.AutoencoderKLWan, torch_dtype=vae_dtype),
            prompt_encoder=loader.t5_prompt_encoder(transformers.UMT5EncoderModel, device, dtype, parsed.max_sequence_length),
            schedule=schedule_from_scheduler(scheduler, parsed.flow_shift),
            defaults=defaults,
            device=device,
            dtype=dtype,
            vae_dtype=vae_dtype,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = self.spatial_factor * self.patch_size[1]
        if height % factor or width % factor:
            raise ConfigError(f"height and width must be multiples of {factor} for Wan, got {height}x{width}", field="height")
        return (self.transformer.config.in_channels, height // self.spatial_factor, width // self.spatial_factor)

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self.prompt_encoder(prompt)

    def token_timesteps(self, timesteps: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Per-frame ``'b f'`` to per-token ``'b (f h w)'`` in the transformer's patch order."""
        tokens_per_frame = (height // self.patch_size[1]) * (width // self.patch_size[2])
        return timesteps.repeat_interleave(tokens_per_frame, dim=1)

    @torch.no_grad()
    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flow velocity ``'b c f h w'`` for ``latents`` ``'b c f h w'`` at ``timesteps`` ``'b f'``."""
        height, width = latents.shape[-2:]
        return self.denoiser(
            latents.to(self.device, self.dtype),
            self.token_timesteps(timesteps.to(self.device, torch.float32), height, width),
            encoder_hidden_states=stack_conditioning(conditioning).to(self.dtype),
            return_dict=False,
        )[0]

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 h w'`` in ``[-1, 1]``, ``t = 1 + 4k``, to ``1 + k`` latents
        ``'c h w'`` (``--init-video``): the causal VAE's posterior mean, normalised as
        :class:`WanStreamDecoder` expects."""
        parameter = next(self.vae.parameters())
        video = frames.permute(1, 0, 2, 3)[None].to(parameter.device, parameter.dtype)  # '1 3 t h w'
        latents = self.vae.encode(video).latent_dist.mean[0]  # 'c t h w'
        channels = self.vae.config.z_dim
        mean = torch.tensor(self.vae.config.latents_mean).view(channels, 1, 1, 1).to(latents)
        std = torch.tensor(self.vae.config.latents_std).view(channels, 1, 1, 1).to(latents)
        return ((latents - mean) / std).permute(1, 0, 2, 3).float()

    def frame_decoder(self) -> WanStreamDecoder:
        return WanStreamDecoder(self.vae)
