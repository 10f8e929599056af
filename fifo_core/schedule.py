"""A backbone's noise schedule and the ``S = n*f`` level grid FIFO walks down.

Notation (Ho et al. 2020, Song et al. 2021 "DDIM", Lipman et al. 2023 "flow matching"):

    T          number of training timesteps of the backbone
    abar_t     alpha-bar: cumulative product of (1 - beta_s) for s <= t
    a, b       signal and noise coefficients of the forward process  x = a * x0 + b * eps
                 discrete (variance preserving): a = sqrt(abar_t) * s_t, b = sqrt(1 - abar_t)
                 (s_t is an optional signal rescaling, 1 for most models; VideoCrafter2 uses it)
                 flow matching:                   a = 1 - sigma,       b = sigma
    S          number of FIFO levels, ``S = n * f``
    level l    an integer: 0 is clean (a = 1, b = 0); 1..S are tau_0 < ... < tau_{S-1}

A frame in queue slot ``i`` sits at level ``i + 1`` and is moved to level ``i`` by one iteration;
the head reaches level 0, a truly clean latent (no identity step, unlike the reference code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

from fifo_core.errors import ConfigError

PredictionType = Literal["epsilon", "v_prediction", "sample", "flow"]
TimestepSpacing = Literal["trailing", "leading", "linspace"]


@dataclass(frozen=True)
class LevelGrid:
    """Coefficients of levels ``0..S`` (index 0 is clean), each a float64 tensor of shape ``(S + 1,)``.

    ``timesteps`` are what the backbone receives; ``signal`` and ``noise`` are ``a`` and ``b``;
    ``alpha_bar`` is the variance-preserving abar used for stochastic (eta > 0) steps, or ``None``
    for flow matching, which has no stochastic DDIM variant here.
    """

    timesteps: torch.Tensor
    signal: torch.Tensor
    noise: torch.Tensor
    alpha_bar: torch.Tensor | None

    @property
    def num_levels(self) -> int:
        return self.timesteps.numel() - 1


@dataclass(frozen=True)
class DiscreteSchedule:
    """A DDPM-style schedule of ``T`` discrete timesteps, described by ``abar_t``.

    ``signal_scale`` (shape ``(T,)``) multiplies ``x0`` in the forward process, as VideoCrafter's
    ``use_scale`` does; leave it ``None`` for ordinary models.
    """

    alphas_cumprod: torch.Tensor
    prediction_type: PredictionType = "epsilon"
    signal_scale: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.prediction_type == "flow":
            raise ConfigError(
                "a discrete schedule cannot predict flow velocities; use FlowMatchingSchedule "
                "for rectified-flow models"
            )
        object.__setattr__(self, "alphas_cumprod", self.alphas_cumprod.to(torch.float64))
        if self.signal_scale is not None:
            object.__setattr__(self, "signal_scale", self.signal_scale.to(torch.float64))

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    @classmethod
    def from_betas(
        cls,
        betas: torch.Tensor,
        prediction_type: PredictionType = "epsilon",
        signal_scale: torch.Tensor | None = None,
    ) -> DiscreteSchedule:
        alphas_cumprod = torch.cumprod(1.0 - betas.to(torch.float64), dim=0)
        return cls(alphas_cumprod, prediction_type, signal_scale)

    @classmethod
    def scaled_linear(
        cls,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        num_train_timesteps: int = 1000,
        prediction_type: PredictionType = "epsilon",
    ) -> DiscreteSchedule:
        """Stable Diffusion's schedule: betas linear in sqrt space."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
        return cls.from_betas(betas, prediction_type)

    @classmethod
    def linear(
        cls,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        num_train_timesteps: int = 1000,
        prediction_type: PredictionType = "epsilon",
    ) -> DiscreteSchedule:
        """The original DDPM schedule: betas linear."""
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        return cls.from_betas(betas, prediction_type)

    def grid_timesteps(self, num_levels: int, spacing: TimestepSpacing = "trailing") -> torch.Tensor:
        """Integer timesteps ``tau_0 < ... < tau_{S-1}`` (ascending noise), as a long tensor.

        ``trailing`` ends at ``T - 1`` so new frames enter at the top noise level; ``leading``
        (with offset 1) is the reference implementation's and VideoCrafter's DDIM grid;
        ``linspace`` spreads ``0..T-1`` evenly.
        """
        total = self.num_train_timesteps
        if not 1 <= num_levels <= total:
            raise ConfigError(
                f"the grid needs between 1 and {total} levels (the backbone's training timesteps), "
                f"got S = n * f = {num_levels}; lower n or f",
                field="partitions",
            )
        # numpy float64, as diffusers computes its grids, so both round the same values
        if spacing == "trailing":
            # float arange can yield one value too many, near 0 (it would be timestep -1): drop it
            descending = (np.round(np.arange(total, 0, -total / num_levels)) - 1)[:num_levels]
            timesteps = torch.from_numpy(descending[::-1].copy())
        elif spacing == "leading":
            step = total // num_levels
            timesteps = torch.from_numpy(np.arange(num_levels, dtype=np.float64) * step + 1).clamp(max=total - 1)
        elif spacing == "linspace":
            timesteps = torch.from_numpy(np.linspace(0, total - 1, num_levels, dtype=np.float64).round())
        else:
            raise ConfigError(
                f"unknown timestep spacing {spacing!r}; expected 'trailing', 'leading' or 'linspace'",
                field="timestep_spacing",
            )
        timesteps = timesteps.long()
        if num_levels > 1 and not bool((timesteps[1:] > timesteps[:-1]).all()):
            raise ConfigError(
                f"{spacing!r} spacing with {num_levels} levels repeats a timestep; use fewer levels "
                "or 'trailing' spacing",
                field="timestep_spacing",
            )
        return timesteps

    def grid(self, num_levels: int, spacing: TimestepSpacing = "trailing") -> LevelGrid:
        steps = self.grid_timesteps(num_levels, spacing)
        alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[steps]])
        scale = torch.ones_like(alpha_bar)
        if self.signal_scale is not None:
            scale[1:] = self.signal_scale[steps]
        return LevelGrid(
            timesteps=torch.cat([torch.zeros(1, dtype=torch.float64), steps.to(torch.float64)]),
            signal=alpha_bar.sqrt() * scale,
            noise=(1.0 - alpha_bar).sqrt(),
            alpha_bar=alpha_bar,
        )


@dataclass(frozen=True)
class FlowMatchingSchedule:
    """A rectified-flow schedule: ``x = (1 - sigma) x0 + sigma eps``, the model predicts the
    velocity ``eps - x0`` and receives ``sigma * T`` as its timestep.

    ``shift`` warps sigmas as ``shift * s / (1 + (shift - 1) * s)`` (Wan, SD3, LTX use it).
    """

    num_train_timesteps: int = 1000
    shift: float = 1.0
    prediction_type: PredictionType = "flow"

    def __post_init__(self) -> None:
        if self.prediction_type != "flow":
            raise ConfigError("a flow-matching schedule predicts 'flow' velocities only")
        if not (self.shift > 0 and math.isfinite(self.shift)):
            raise ConfigError(f"the sigma shift must be a positive number, got {self.shift}")

    def grid_sigmas(self, num_levels: int) -> torch.Tensor:
        """Sigmas of levels ``1..S``, ascending, ending at 1 (pure noise)."""
        if num_levels < 1:
            raise ConfigError(f"the grid needs at least one level, got {num_levels}", field="partitions")
        total = self.num_train_timesteps
        sigmas = torch.linspace(1.0 / total, 1.0, num_levels, dtype=torch.float64)
        if num_levels == 1:
            sigmas = torch.ones(1, dtype=torch.float64)
        return self.shift * sigmas / (1.0 + (self.shift - 1.0) * sigmas)

    def grid(self, num_levels: int, spacing: TimestepSpacing = "trailing") -> LevelGrid:
        sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), self.grid_sigmas(num_levels)])
        return LevelGrid(
            timesteps=sigmas * self.num_train_timesteps,
            signal=1.0 - sigmas,
            noise=sigmas,
            alpha_bar=None,
        )


NoiseSchedule = Union[DiscreteSchedule, FlowMatchingSchedule]


def add_noise(clean: torch.Tensor, noise: torch.Tensor, signal: torch.Tensor, noise_coefficient: torch.Tensor) -> torch.Tensor:
    """Forward process ``x = a * x0 + b * eps`` with per-frame ``a``, ``b`` of shape ``(k,)``.

    ``clean`` and ``noise``: ``'k c h w'``.
    """
    shape = (-1,) + (1,) * (clean.dim() - 1)
    a = signal.to(clean.device, torch.float64).reshape(shape)
    b = noise_coefficient.to(clean.device, torch.float64).reshape(shape)
    return (a * clean.double() + b * noise.double()).to(clean.dtype)
