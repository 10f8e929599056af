"""LTX-Video 0.9: ``LTXVideoTransformer3DModel`` + ``AutoencoderKLLTXVideo`` + T5.

Loads a diffusers ``LTXPipeline`` folder or hub id (subfolders ``transformer``, ``vae``,
``text_encoder``, ``tokenizer``, ``scheduler``), or components one by one.

* Timesteps: the transformer natively takes a timestep per token ``'b (f h w)'`` (it embeds
  ``timestep.flatten()`` and views the result per token), so each frame's timestep is repeated
  over its ``h w`` tokens; no shim. Latents enter packed as tokens ``'b (f h w) c'``.
* Schedule: rectified flow. LTX's scheduler shifts sigmas by resolution (dynamic shifting), which
  a fixed FIFO level grid cannot follow: the ``flow_shift`` option is then required.
* Decoding: the VAE compresses time 8x and space 32x; latent ``j >= 1`` decodes to video frames
  ``8j-7 .. 8j``, latent 0 to frame 0. Its decoder is not causal (LTX-Video 0.9): every frame
  depends on latents before and after it. :func:`ltx_stream_decoder` decodes overlapping chunks at
  the queue head, with ``context`` earlier and ``lookahead`` later latents around each group of
  new ones, and emits only the new latents' frames (the difference to a whole-clip decode is
  measured in the tests and documented in ``docs/adapters/ltx.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch

from fifo_core.backbone import BackboneDefaults
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.decoding import ChunkedClipDecoder
from fifo_core.errors import ConfigError, PluginError
from fifo_core.schedule import NoiseSchedule
from fifo_diffusers.common import (
    ComponentLoader,
    place,
    require,
    resolve_device,
    resolve_dtype,
    schedule_from_scheduler,
)
from fifo_diffusers.defaults import LTXOptions

COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


def ltx_stream_decoder(vae: Any, *, context: int, lookahead: int, chunk: int) -> ChunkedClipDecoder:
    """Chunked streaming decode at the queue head (:class:`~fifo_core.decoding.ChunkedClipDecoder`)
    with the LTX VAE: latents are denormalised and decoded ``chunk`` at a time with up to
    ``context`` earlier and ``lookahead`` later ones. A causal decoder needs no lookahead (it is
    then forced to 0). The first latent gives 1 frame and every later one 8."""
    parameter = next(vae.parameters())
    device, dtype = parameter.device, parameter.dtype
    mean = vae.latents_mean.view(-1, 1, 1, 1).to(device, dtype)
    std = vae.latents_std.view(-1, 1, 1, 1).to(device, dtype)
    temb = torch.zeros(1, device=device, dtype=dtype) if vae.config.timestep_conditioning else None

    def decode_clip(latents: torch.Tensor) -> torch.Tensor:
        z = latents.to(device, dtype) * std / vae.config.scaling_factor + mean
        return vae.decoder(z[None], temb)[0].clamp(-1, 1)

    return ChunkedClipDecoder(
        decode_clip,
        per_latent=vae.temporal_compression_ratio,
        context=context,
        lookahead=0 if vae.config.decoder_causal else lookahead,
        chunk=chunk,
    )


class LTXBackbone:
    """FIFO backbone over an ``LTXVideoTransformer3DModel``."""

    def __init__(
        self,
        *,
        transformer: Any,
        vae: Any,
        prompt_encoder: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
        schedule: NoiseSchedule,
        defaults: BackboneDefaults,
        device: torch.device,
        dtype: torch.dtype,
        vae_dtype: torch.dtype = torch.float32,
        frame_rate: float = 24.0,
        decode_context: int = 2,
        decode_lookahead: int = 2,
        decode_chunk: int = 4,
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
        self.frame_rate = frame_rate
        self.decode_settings = {"context": decode_context, "lookahead": decode_lookahead, "chunk": decode_chunk}
        config = self.transformer.config
        if config.patch_size_t != 1:
            raise PluginError(f"LTX transformers with a temporal patch size {config.patch_size_t} are not supported (need 1)")
        self.patch_size = config.patch_size

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> LTXBackbone:
        parsed = LTXOptions.model_validate(options)
        diffusers, transformers = require("diffusers"), require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device, cuda_default=torch.bfloat16)
        vae_dtype = resolve_dtype(parsed.vae_dtype, device)
        loader = ComponentLoader(parsed, COMPONENTS)
        scheduler = loader.scheduler()
        if parsed.flow_shift is None and scheduler.config.get("use_dynamic_shifting", False):
            raise ConfigError(
                "LTX-Video's scheduler shifts sigmas by the video's token count (use_dynamic_shifting), but FIFO walks "
                "one fixed level grid: pass a shift with --option flow_shift=... (diffusers would use about "
                f"{dynamic_shift(scheduler.config, defaults):.1f} at {defaults.width}x{defaults.height} with "
                f"{defaults.window} latent frames)",
                field="backbone_options",
            )
        return cls(
            transformer=loader.load("transformer", diffusers.LTXVideoTransformer3DModel, torch_dtype=dtype),
            vae=loader.load("vae", diffusers.AutoencoderKLLTXVideo, torch_dtype=vae_dtype),
            prompt_encoder=loader.t5_prompt_encoder(transformers.T5EncoderModel, device, dtype, parsed.max_sequence_length).encode_with_mask,
            schedule=schedule_from_scheduler(scheduler, parsed.flow_shift),
            defaults=defaults,
            device=device,
            dtype=dtype,
            vae_dtype=vae_dtype,
            frame_rate=parsed.frame_rate,
            decode_context=parsed.decode_context,
            decode_lookahead=parsed.decode_lookahead,
            decode_chunk=parsed.decode_chunk,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        spatial = self.vae.spatial_compression_ratio
        factor = spatial * self.patch_size
        if height % factor or width % factor:
            raise ConfigError(f"height and width must be multiples of {factor} for LTX-Video, got {height}x{width}", field="height")
        return (self.transformer.config.in_channels, height // spatial, width // spatial)

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 states ``'1 L d'`` and their attention mask ``'1 L'`` (LTX attends to prompt tokens only)."""
        return self.prompt_encoder(prompt)

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        """``'b c f (h p) (w q)'`` to tokens ``'b (f h w) (c p q)'``, the order LTXPipeline packs."""
        p = self.patch_size
        return latents.unflatten(3, (-1, p)).unflatten(5, (-1, p)).permute(0, 2, 3, 5, 1, 4, 6).flatten(4, 6).flatten(1, 3)

    def unpack(self, tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        p = self.patch_size
        video = tokens.unflatten(1, (frames, height // p, width // p)).unflatten(-1, (-1, p, p))
        return video.permute(0, 4, 1, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)

    def token_timesteps(self, timesteps: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Per-frame ``'b f'`` to per-token ``'b (f h w)'``."""
        return timesteps.repeat_interleave((height // self.patch_size) * (width // self.patch_size), dim=1)

    @torch.no_grad()
    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[Any]) -> torch.Tensor:
        """Flow velocity ``'b c f h w'`` for ``latents`` ``'b c f h w'`` at ``timesteps`` ``'b f'``."""
        frames, height, width = latents.shape[2:]
        states = torch.cat([state for state, _ in conditioning]).to(self.device, self.dtype)
        mask = torch.cat([mask for _, mask in conditioning]).to(self.device)
        spatial, temporal = self.vae.spatial_compression_ratio, self.vae.temporal_compression_ratio
        output = self.denoiser(
            hidden_states=self.pack(latents.to(self.device, self.dtype)),
            encoder_hidden_states=states,
            timestep=self.token_timesteps(timesteps.to(self.device, torch.float32), height, width),
            encoder_attention_mask=mask,
            num_frames=frames,
            height=height // self.patch_size,
            width=width // self.patch_size,
            rope_interpolation_scale=(temporal / self.frame_rate, spatial, spatial),
            return_dict=False,
        )[0]
        return self.unpack(output, frames, height, width)

    def frame_decoder(self) -> ChunkedClipDecoder:
        return ltx_stream_decoder(self.vae, **self.decode_settings)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 h w'`` in ``[-1, 1]``, ``t = 1 + 8k``, to ``1 + k`` latents
        ``'c h w'`` (``--init-video``): the posterior mean, normalised as :func:`ltx_stream_decoder`
        expects."""
        parameter = next(self.vae.parameters())
        video = frames.permute(1, 0, 2, 3)[None].to(parameter.device, parameter.dtype)  # '1 3 t h w'
        latents = self.vae.encode(video).latent_dist.mean[0]  # 'c t h w'
        mean = self.vae.latents_mean.view(-1, 1, 1, 1).to(latents)
        std = self.vae.latents_std.view(-1, 1, 1, 1).to(latents)
        return ((latents - mean) * self.vae.config.scaling_factor / std).permute(1, 0, 2, 3).float()


def dynamic_shift(config: Any, defaults: BackboneDefaults) -> float:
    """The shift ``exp(mu)`` diffusers' LTXPipeline derives from the token count of one window
    at the default size (``calculate_shift``: linear in the sequence length)."""
    tokens = defaults.window * (defaults.height // 32) * (defaults.width // 32)
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (max_shift - base_shift) / (max_len - base_len)
    return float(np.exp(tokens * slope + base_shift - slope * base_len))
