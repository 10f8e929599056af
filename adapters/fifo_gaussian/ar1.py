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

import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule

Denoiser = Literal["per-frame", "single-level"]

# Chosen with fifo_gaussian.theory (exact stationary statistics; docs/gaussian-backbone.md):
# * window f = 16: FIFO's windows only see f frames, so dependence longer than the window is lost
#   (variance and autocorrelation shrink); f = 16 halves the loss of f = 8 at the same S.
# * n = 4 (S = 64 levels): the sampler's own discretisation loss falls with S (about 1 - 3/S in
#   variance for DDIM here), while FIFO's window loss does not; 64 levels balance the two.
# * DDIM with eta = 0: deterministic steps lose less variance than DDPM at the same S.
# With rho = 0.5 the output then has variance 0.93 and lag-k autocorrelation within 0.025 of rho^k.
DEFAULTS = BackboneDefaults(
    height=64,
    width=64,
    window=16,
    partitions=4,
    lookahead=True,
    sampler="ddim",
    eta=0.0,
    guidance_scale=1.0,
    fps=8.0,
)


class GaussianOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rho: float = Field(
        default=0.5,
        gt=-1,
        lt=1,
        description="lag-1 correlation of every latent value over time (memory should fit the window f)",
    )
    denoiser: Denoiser = "per-frame"
    channels: int = Field(default=3, ge=1)
    downsample: int = Field(default=8, ge=1, description="pixels per latent value along each side")


class GaussianAR1Backbone:
    """Latents ``'c h w'`` with ``h = height / downsample``; the prompt is ignored."""

    defaults = DEFAULTS

    def __init__(self, rho: float = 0.5, denoiser: Denoiser = "per-frame", channels: int = 3, downsample: int = 8) -> None:
        self.rho = rho
        self.denoiser = denoiser
        self.channels = channels
        self.downsample = downsample
        self.schedule = DiscreteSchedule.scaled_linear()
        self.device = torch.device("cpu")
        self._abar = self.schedule.alphas_cumprod
        # Per instance, so the cache dies with the backbone; FIFO uses a few dozen patterns.
        self._cached_noise_matrix = functools.lru_cache(maxsize=4096)(self._build_noise_matrix)

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
        """``E[x | y]`` for ``noisy`` ``'... f n'`` at per-frame coefficients ``a``, ``b`` ``'... f'``
        (leading dimensions batch independent windows)."""
        sigma = self.covariance(noisy.shape[-2])
        observed = a[..., :, None] * sigma * a[..., None, :] + torch.diag_embed(b**2)
        return (sigma * a[..., None, :]) @ torch.linalg.solve(observed, noisy)

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``eps_hat`` ``'... f n'`` for windows ``'... f n'`` with timesteps ``'... f'``, in float64."""
        a, b = self.coefficients(timesteps)
        if self.denoiser == "per-frame":
            clean = self.posterior_mean(noisy, a, b)
        else:
            # Frame j's estimate as if every frame of its window sat at frame j's level: one solve
            # per (window, j), batched over a new leading frame axis, then keep row j of solve j.
            frames = noisy.shape[-2]
            level_a = a.unsqueeze(-2).expand(*a.shape, frames).transpose(-1, -2)  # '... j f': a_j everywhere
            level_b = b.unsqueeze(-2).expand(*b.shape, frames).transpose(-1, -2)
            every = self.posterior_mean(noisy.unsqueeze(-3).expand(*noisy.shape[:-2], frames, *noisy.shape[-2:]), level_a, level_b)
            clean = every.diagonal(dim1=-3, dim2=-2).transpose(-1, -2)  # row j of solve j: '... f n'
        return (noisy - a[..., None] * clean) / b[..., None]

    def noise_matrix(self, timesteps: torch.Tensor) -> torch.Tensor:
        """``E`` ``(f, f)`` with ``eps_hat = E y`` for one window at ``timesteps`` ``(f,)``.

        The prediction is linear in ``y``, so predicting for the identity gives its matrix. FIFO
        asks for the same few timestep patterns every iteration, so matrices are cached.
        """
        return self._cached_noise_matrix(tuple(timesteps.double().round().tolist()))

    def _build_noise_matrix(self, timesteps: tuple[float, ...]) -> torch.Tensor:
        frames = len(timesteps)
        return self.predict_noise(torch.eye(frames, dtype=torch.float64), torch.tensor(timesteps, dtype=torch.float64))

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[str]) -> torch.Tensor:
        batch, channels, frames, height, width = latents.shape
        rows = latents.double().permute(0, 2, 1, 3, 4).reshape(batch, frames, -1)
        # Python floats as cache keys: iterating a tensor would create a view object per row.
        matrices = torch.stack([self._cached_noise_matrix(tuple(row)) for row in timesteps.double().round().tolist()])
        # numpy for the product: for these tiny batched matrices torch's intra-op threads cost
        # ~10 ms a call on a busy machine (they spin), numpy's ~0.1 ms. Same float64 result.
        output = torch.from_numpy(np.matmul(matrices.numpy(), rows.cpu().numpy())).to(rows.device)
        return output.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4).to(latents.dtype)

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        image = torch.tanh(latent[:3] / 2)
        if image.shape[0] < 3:
            image = image[:1].expand(3, -1, -1)
        image = image.repeat_interleave(self.downsample, 1).repeat_interleave(self.downsample, 2)
        return to_uint8_frame(image)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)
