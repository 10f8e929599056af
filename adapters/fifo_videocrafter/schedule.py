"""VideoCrafter's noise schedule, its ``use_scale`` signal rescaling, and the buffers a checkpoint stores.

Notation (see :mod:`fifo_core.schedule`):

    beta_t     linear in sqrt space from linear_start to linear_end, t = 0..T-1
    abar_t     prod_{s <= t} (1 - beta_s)
    s_t        scale_arr[t]: linear from scale_a (t = 0) to scale_b (t = mid_step - 1), then scale_b
    forward    x_t = sqrt(abar_t) * s_t * x0 + sqrt(1 - abar_t) * eps      (use_scale)

VideoCrafter's own DDIM sampler honours ``s_t``: ``x0 = (x_t - sqrt(1 - abar_t) eps) / (sqrt(abar_t) s_t)``
and ``x_prev = sqrt(abar_prev) s_prev x0 + ...`` -- which is exactly the core's per-frame step with
``signal = sqrt(abar) * s``. The FIFO reference implementation's diagonal step leaves ``s_t`` out
(``ignore_signal_scale`` reproduces that).
"""

from __future__ import annotations

import torch

from fifo_core.schedule import DiscreteSchedule
from fifo_videocrafter.config import ScheduleConfig


def betas(config: ScheduleConfig) -> torch.Tensor:
    return torch.linspace(config.linear_start**0.5, config.linear_end**0.5, config.timesteps, dtype=torch.float64) ** 2


def scale_table(config: ScheduleConfig) -> torch.Tensor:
    """``scale_arr`` as the checkpoint stores it: ``T`` entries, or ``T + mid_step`` without ``fix_scale_bug``."""
    tail = config.timesteps - config.mid_step if config.fix_scale_bug else config.timesteps
    ramp = torch.linspace(config.scale_a, config.scale_b, config.mid_step, dtype=torch.float64)
    return torch.cat([ramp, torch.full((tail,), config.scale_b, dtype=torch.float64)])


def noise_schedule(config: ScheduleConfig, *, ignore_signal_scale: bool = False) -> DiscreteSchedule:
    """The schedule the core steps with; ``s_t`` included unless ``ignore_signal_scale``."""
    scale = scale_table(config)[: config.timesteps] if config.use_scale and not ignore_signal_scale else None
    return DiscreteSchedule.from_betas(betas(config), "epsilon", scale)


def checkpoint_buffers(config: ScheduleConfig) -> dict[str, torch.Tensor]:
    """The schedule buffers a VideoCrafter checkpoint holds at top level (float32, as stored)."""
    beta = betas(config)
    alpha = 1.0 - beta
    abar = torch.cumprod(alpha, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    posterior_variance = beta * (1.0 - abar_prev) / (1.0 - abar)
    buffers = {
        "betas": beta,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "sqrt_alphas_cumprod": abar.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - abar).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - abar).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / abar).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / abar - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": beta * abar_prev.sqrt() / (1.0 - abar),
        "posterior_mean_coef2": (1.0 - abar_prev) * alpha.sqrt() / (1.0 - abar),
    }
    if config.use_scale:
        buffers["scale_arr"] = scale_table(config)
    return {name: value.to(torch.float32) for name, value in buffers.items()}


def mismatched_buffers(config: ScheduleConfig, stored: dict[str, torch.Tensor], tolerance: float = 1e-5) -> list[str]:
    """Names of the schedule buffers (those the sampler depends on) that differ from ``config``'s."""
    expected = checkpoint_buffers(config)
    wrong = []
    for name in ("betas", "alphas_cumprod", "scale_arr"):
        if name not in expected:
            continue
        value = stored.get(name)
        if value is None or value.shape != expected[name].shape:
            wrong.append(name)
        elif not torch.allclose(value.double(), expected[name].double(), rtol=tolerance, atol=1e-8):
            wrong.append(name)
    return wrong
