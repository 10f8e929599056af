"""A third-party backbone in one module: latents that are white Gaussian noise.

The "model" is the exact denoiser for i.i.d. standard-normal latents, so it needs no weights:
with ``y = a x0 + b eps`` and ``x0 ~ N(0, 1)``, ``E[x0 | y] = a y / (a^2 + b^2)``. A real adapter
replaces :meth:`WhiteNoiseBackbone.predict` with its network and :meth:`decode` with its VAE.
"""

from __future__ import annotations

import torch

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.hookspecs import hookimpl
from fifo_core.schedule import DiscreteSchedule


class WhiteNoiseBackbone:
    defaults = BackboneDefaults(height=32, width=32, window=4, partitions=2, sampler="ddim", eta=0.0, guidance_scale=1.0, fps=8)

    def __init__(self) -> None:
        self.schedule = DiscreteSchedule.scaled_linear()
        self.device = torch.device("cpu")

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (3, height // 4, width // 4)

    def encode_prompt(self, prompt: str) -> None:
        return None  # this model ignores text

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning) -> torch.Tensor:
        """Noise prediction ``'b c f h w'`` with one timestep per frame ``'b f'``."""
        abar = self.schedule.alphas_cumprod[timesteps.long().cpu()].to(latents)
        a = abar.sqrt()[:, None, :, None, None]
        b = (1 - abar).sqrt()[:, None, :, None, None]
        clean = a * latents / (a**2 + b**2)
        return (latents - a * clean) / b

    def decode(self, latent: torch.Tensor):
        image = torch.tanh(latent).repeat_interleave(4, 1).repeat_interleave(4, 2)
        return to_uint8_frame(image)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)


@hookimpl
def register_backbones(register):
    register(
        "example-white-noise",
        WhiteNoiseBackbone,
        defaults=WhiteNoiseBackbone.defaults,
        description="Third-party example: white-noise latents with an exact denoiser.",
    )
