"""Relative MSE of a backbone's noise prediction on FIFO's diagonal (paper Fig. 5, Table 2).

For a level ``l`` (timestep ``tau_{l-1}``) and a configuration (``f``, ``n``, lookahead):

    rel_mse(l) = E || eps_hat_diag - eps ||^2 / E || eps_hat_orig - eps ||^2

* ``eps_hat_diag``: the backbone's noise estimate for the frame at level ``l`` inside the window
  that writes it in FIFO's steady state, every other frame of that window at the level its slot
  has (lookahead's context frames clean): :func:`diagonal_sites`;
* ``eps_hat_orig``: its estimate for the frame at the same position when every frame of the
  window is at level ``l``, as in ordinary sampling.

Both errors are measured on the same clean clips and noise draws, so most of the sampling noise
cancels in the ratio. The geometry is the core's (``QueueLayout`` windows, the schedule's
``LevelGrid``), and a model output becomes a noise estimate through
:func:`fifo_core.steps.clean_and_noise_estimates`, so any backbone and prediction type works.
Backbone-specific parts (where clean clips come from, closed forms) live in the adapters:
``fifo_shapes.rel_mse`` (clips of the shapes world), ``fifo_gaussian.rel_mse`` (the AR(1)
process, exactly).

Shapes: clips ``'m c f h w'`` (``m`` draws); per-level results ``(S,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fifo_core.backbone import Backbone
from fifo_core.partition import QueueLayout, Window
from fifo_core.schedule import TimestepSpacing
from fifo_core.steps import FrameLevels, clean_and_noise_estimates


@dataclass(frozen=True)
class DiagonalSite:
    """Where the frame at ``level`` sits in steady state: the window levels it is predicted with
    (``levels``, ``(f,)``, 0 = clean context) and its ``position`` in that window."""

    level: int
    levels: torch.Tensor
    position: int


def diagonal_sites(layout: QueueLayout) -> list[DiagonalSite]:
    """One site per level ``1..S``: in steady state slot ``context + l - 1`` is at level ``l``."""
    slot_levels = torch.cat([torch.zeros(layout.context, dtype=torch.long), torch.arange(1, layout.num_levels + 1)])
    writer: dict[int, Window] = {slot: window for window in layout.windows for slot in window.write}
    sites = []
    for level in range(1, layout.num_levels + 1):
        slot = layout.context + level - 1
        window = writer[slot]
        sites.append(DiagonalSite(level, slot_levels[window.read_start : window.read_stop], slot - window.read_start))
    return sites


@dataclass(frozen=True)
class RelMse:
    """Per-level results for one configuration; ``timesteps`` are the model timesteps of the
    levels, ``diagonal`` and ``original`` the two mean squared errors."""

    timesteps: torch.Tensor
    diagonal: torch.Tensor
    original: torch.Tensor

    @property
    def ratio(self) -> torch.Tensor:
        return self.diagonal / self.original


def backbone_rel_mse(
    backbone: Backbone,
    layout: QueueLayout,
    clean: torch.Tensor,
    conditioning: Sequence[Any],
    seed: int = 0,
    spacing: TimestepSpacing = "trailing",
) -> RelMse:
    """``rel_mse`` per level of ``layout``'s grid for ``backbone`` on ``clean`` clips ``'m c f h w'``
    (``f`` = the layout's window) with one encoded prompt per clip."""
    draws, _, frames = clean.shape[:3]
    if frames != layout.window:
        raise ValueError(f"clips of {frames} frames for a window of {layout.window}; draw clips of the window's length")
    grid = backbone.schedule.grid(layout.num_levels, spacing)
    generator = torch.Generator().manual_seed(seed)
    prediction_type = backbone.schedule.prediction_type
    diagonal, original = [], []
    for site in diagonal_sites(layout):
        noise = torch.randn(clean.shape, generator=generator)
        target = noise[:, :, site.position].double()
        errors = []
        for levels in (site.levels, torch.full_like(site.levels, site.level)):
            signal = grid.signal[levels].float()[None, None, :, None, None]
            spread = grid.noise[levels].float()[None, None, :, None, None]
            noisy = signal * clean + spread * noise
            timesteps = grid.timesteps[levels].float()[None].expand(draws, frames)
            with torch.no_grad():
                output = backbone.predict(noisy.to(backbone.device), timesteps.to(backbone.device), list(conditioning)).cpu()
            # one frame per draw: 'm c h w', its level's coefficients broadcast over the draws
            level = FrameLevels.gather(grid, torch.tensor([site.level]))
            _, estimate = clean_and_noise_estimates(noisy[:, :, site.position], output[:, :, site.position], level, prediction_type)
            errors.append(float(((estimate - target) ** 2).mean()))
        diagonal.append(errors[0])
        original.append(errors[1])
    return RelMse(grid.timesteps[1:].clone(), torch.tensor(diagonal, dtype=torch.float64), torch.tensor(original, dtype=torch.float64))


def adjacent_frame_correlation(clips: torch.Tensor) -> float:
    """The correlation of a pixel (latent element) in frame ``k`` with the same pixel in frame
    ``k + 1``, over clips ``'m c f h w'``: each pixel's series is centred by the clips' mean
    pixel value per channel. This is the ``rho`` of the AR(1) process whose rel_mse a model's
    clips are most like (the regime question of docs/results.md)."""
    centred = clips.double() - clips.double().mean(dim=(0, 2, 3, 4), keepdim=True)
    now, after = centred[:, :, :-1], centred[:, :, 1:]
    return float((now * after).mean() / (0.5 * (now.pow(2).mean() + after.pow(2).mean())))
