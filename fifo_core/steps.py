"""Per-frame scheduler updates, vectorised over frames.

Every frame ``k`` carries its own level: coefficients ``a_k, b_k`` now and ``a'_k, b'_k`` after
the step (see :mod:`fifo_core.schedule` for the notation). One update covers the samplers:

1. From the model output, recover the clean estimate ``x0`` and the noise estimate ``eps``:
     epsilon:       eps = out                  x0 = (x - b eps) / a
     v_prediction:  x0 = a x - b out           eps = b x + a out      (variance preserving)
     sample:        x0 = out                   eps = (x - a x0) / b
     flow:          x0 = x - b out             eps = x + a out        (a = 1 - sigma, b = sigma)
2. DDIM (Song et al. 2021, eq. 12) with stochasticity ``eta``:
     s  = eta * sqrt((1 - abar') / (1 - abar)) * sqrt(1 - abar / abar')
     x' = a' x0 + sqrt(b'^2 - s^2) eps + s z,   z ~ N(0, I)
   * DDPM's ancestral step with the "fixed small" posterior variance is exactly DDIM with eta = 1.
   * Flow-matching Euler, ``x' = x + (sigma' - sigma) * out``, is exactly DDIM with eta = 0 in
     ``(a, b) = (1 - sigma, sigma)``.

Shapes: ``x``, ``model_output``, ``z``: ``'k c h w'`` (or any ``'k ...'``); coefficients: ``(k,)``.
Arithmetic is done in float64 and cast back, so the update adds no rounding of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from fifo_core.errors import ConfigError
from fifo_core.schedule import LevelGrid, PredictionType

SamplerName = Literal["ddim", "ddpm", "euler"]


@dataclass(frozen=True)
class FrameLevels:
    """Per-frame coefficients of one set of levels, each ``(k,)`` float64."""

    signal: torch.Tensor
    noise: torch.Tensor
    alpha_bar: torch.Tensor | None

    @classmethod
    def gather(cls, grid: LevelGrid, levels: torch.Tensor) -> FrameLevels:
        index = levels.to(torch.long).cpu()
        return cls(
            signal=grid.signal[index],
            noise=grid.noise[index],
            alpha_bar=None if grid.alpha_bar is None else grid.alpha_bar[index],
        )


def _per_frame(coefficient: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return coefficient.to(like.device, torch.float64).reshape((-1,) + (1,) * (like.dim() - 1))


def clean_and_noise_estimates(
    x: torch.Tensor, model_output: torch.Tensor, now: FrameLevels, prediction_type: PredictionType
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1 above: ``(x0, eps)`` in float64 from a model output of ``prediction_type``."""
    x = x.double()
    out = model_output.double()
    a = _per_frame(now.signal, x)
    b = _per_frame(now.noise, x)
    if prediction_type == "epsilon":
        return (x - b * out) / a, out
    if prediction_type == "v_prediction":
        return a * x - b * out, b * x + a * out
    if prediction_type == "sample":
        return out, (x - a * out) / b
    if prediction_type == "flow":
        return x - b * out, x + a * out
    raise ConfigError(
        f"unknown prediction type {prediction_type!r}; expected 'epsilon', 'v_prediction', 'sample' or 'flow'"
    )


def ddim_step(
    x: torch.Tensor,
    model_output: torch.Tensor,
    now: FrameLevels,
    after: FrameLevels,
    prediction_type: PredictionType,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Step 2 above: move each frame from its level ``now`` to its level ``after``."""
    if eta < 0:
        raise ConfigError(f"eta must be >= 0 (0 is deterministic DDIM, 1 is DDPM), got {eta}", field="eta")
    x0, eps = clean_and_noise_estimates(x, model_output, now, prediction_type)
    a_after = _per_frame(after.signal, x0)
    b_after = _per_frame(after.noise, x0)
    if eta == 0:
        return (a_after * x0 + b_after * eps).to(x.dtype)
    if now.alpha_bar is None or after.alpha_bar is None:
        raise ConfigError(
            "stochastic steps (eta > 0, DDPM) need a discrete schedule; flow-matching backbones "
            "use the 'euler' sampler",
            field="sampler",
        )
    if noise is None:
        raise ValueError("a stochastic step (eta > 0) needs its Gaussian noise passed explicitly")
    abar = _per_frame(now.alpha_bar, x0)
    abar_after = _per_frame(after.alpha_bar, x0)
    s = eta * ((1 - abar_after) / (1 - abar)).sqrt() * (1 - abar / abar_after).clamp(min=0).sqrt()
    direction = (b_after**2 - s**2).clamp(min=0).sqrt()
    return (a_after * x0 + direction * eps + s * noise.double()).to(x.dtype)


def step_down(
    x: torch.Tensor,
    model_output: torch.Tensor,
    levels: torch.Tensor,
    grid: LevelGrid,
    prediction_type: PredictionType,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`ddim_step` from each frame's level ``levels`` ``(k,)`` on ``grid`` to the level below it."""
    return ddim_step(x, model_output, FrameLevels.gather(grid, levels), FrameLevels.gather(grid, levels - 1), prediction_type, eta, noise)


def sampler_eta(sampler: SamplerName, eta: float) -> float:
    """The DDIM ``eta`` a named sampler runs with (see the module notes)."""
    if sampler == "ddim":
        return eta
    if sampler == "ddpm":
        return 1.0
    if sampler == "euler":
        return 0.0
    raise ConfigError(f"unknown sampler {sampler!r}; expected 'ddim', 'ddpm' or 'euler'", field="sampler")
