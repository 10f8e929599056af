"""The AR(1) Gaussian backbone.

Every latent value follows, over frames, the stationary process

    x_k = rho * x_{k-1} + sqrt(1 - rho^2) * w_k,   w_k ~ N(0, 1),

so a window of ``f`` frames is ``x ~ N(0, Sigma)`` with ``Sigma_ij = rho^|i - j|``, independently for
every (channel, row, column). With per-frame noise ``y_j = a_j x_j + b_j eps_j`` (``A``, ``B``
diagonal), the minimum-MSE denoiser is closed form:

    E[x | y] = Sigma A (A Sigma A + B^2)^-1 y,     eps_hat_j = (y_j - a_j E[x_j | y]) / b_j.

``denoiser="per-frame"`` is that exact denoiser. ``denoiser="single-level"`` mimics a video model
trained only on clips whose frames share one noise level: for frame ``j`` it assumes every frame of
the window is at frame ``j``'s level, which is exact for ordinary sampling and wrong on FIFO's
diagonal -- the train/inference gap that partitioning and lookahead reduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule

Denoiser = Literal["per-frame", "single-level"]

DEFAULTS = BackboneDefaults(
    height=64,
    width=64,
    window=8,
    partitions=4,
    lookahead=True,
    sampler="ddpm",
    eta=1.0,
    guidance_scale=1.0,
    fps=8.0,
)


class GaussianOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rho: float = Field(default=0.9, gt=-1, lt=1, description="lag-1 correlation of every latent value over time")
    denoiser: Denoiser = "per-frame"
    channels: int = Field(default=3, ge=1)
    downsample: int = Field(default=8, ge=1, description="pixels per latent value along each side")


class GaussianAR1Backbone:
    """Latents ``'c h w'`` with ``h = height / downsample``; the prompt is ignored."""

    defaults = DEFAULTS

    def __init__(self, rho: float = 0.9, denoiser: Denoiser = "per-frame", channels: int = 3, downsample: int = 8) -> None:
        self.rho = rho
        self.denoiser = denoiser
        self.channels = channels
        self.downsample = downsample
        self.schedule = DiscreteSchedule.scaled_linear()
        self.device = torch.device("cpu")
        self._abar = self.schedule.alphas_cumprod

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        if height % self.downsample or width % self.downsample:
            raise ConfigError(
                f"height and width must be multiples of {self.downsample} for this backbone, got {height}x{width}",
                field="height",
            )
        return (self.channels, height // self.downsample, width // self.downsample)

    def encode_prompt(self, prompt: str) -> str:
        return prompt

    def covariance(self, frames: int) -> torch.Tensor:
        index = torch.arange(frames, dtype=torch.float64)
        return self.rho ** (index[:, None] - index[None, :]).abs()

    def coefficients(self, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` for model timesteps (the clean level arrives as timestep 0)."""
        abar = self._abar[timesteps.round().long().clamp(0, self._abar.numel() - 1).cpu()]
        return abar.sqrt(), (1 - abar).sqrt()

    def posterior_mean(self, noisy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``E[x | y]`` for ``noisy`` ``'f n'`` at per-frame coefficients ``a``, ``b`` ``(f,)``."""
        sigma = self.covariance(noisy.shape[0])
        observed = a[:, None] * sigma * a[None, :] + torch.diag(b**2)
        return (sigma * a[None, :]) @ torch.linalg.solve(observed, noisy)

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``eps_hat`` ``'f n'`` for one window ``'f n'`` with timesteps ``(f,)``, in float64."""
        a, b = self.coefficients(timesteps)
        if self.denoiser == "per-frame":
            clean = self.posterior_mean(noisy, a, b)
        else:
            clean = torch.stack(
                [self.posterior_mean(noisy, a[j].expand_as(a), b[j].expand_as(b))[j] for j in range(noisy.shape[0])]
            )
        return (noisy - a[:, None] * clean) / b[:, None]

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[str]) -> torch.Tensor:
        batch, channels, frames, height, width = latents.shape
        rows = latents.double().permute(0, 2, 1, 3, 4).reshape(batch, frames, -1)
        output = torch.stack([self.predict_noise(rows[i], timesteps[i]) for i in range(batch)])
        return output.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4).to(latents.dtype)

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        image = torch.tanh(latent[:3] / 2)
        if image.shape[0] < 3:
            image = image[:1].expand(3, -1, -1)
        image = image.repeat_interleave(self.downsample, 1).repeat_interleave(self.downsample, 2)
        return to_uint8_frame(image)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)
