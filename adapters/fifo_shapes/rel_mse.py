"""Relative MSE of the default model's noise prediction on FIFO's diagonal (paper Fig. 5, Table 2).

For a level ``l`` of a configuration (``f``, ``n``, lookahead), on clips of the shapes world:

    rel_mse(l) = E || eps_hat_diag - eps ||^2 / E || eps_hat_orig - eps ||^2

* ``eps_hat_diag``: the model's noise estimate for the frame at level ``l`` inside the window that
  writes it in FIFO's steady state, every other frame of the window at its own slot's level
  (lookahead's context frames clean), as :func:`fifo_gaussian.rel_mse.diagonal_sites` gives them;
* ``eps_hat_orig``: its estimate for the frame at the same position when every frame of the window
  is at level ``l``, as in ordinary sampling.

Both use the same clips, captions and noise draws, so most of the sampling noise cancels in the
ratio. The model's output (v-prediction for fifo-shapes) becomes a noise estimate through the
core's :func:`fifo_core.steps.clean_and_noise_estimates`, so any backbone's prediction type works.

Shapes: clips ``'m c f h w'`` (``m`` draws); per-level results ``(S,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fifo_core.backbone import Backbone
from fifo_core.partition import QueueLayout
from fifo_core.schedule import TimestepSpacing
from fifo_core.steps import FrameLevels, clean_and_noise_estimates
from fifo_gaussian.rel_mse import RelMse, diagonal_sites


def world_clips(count: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """``count`` clean clips ``'m 3 f 32 32'`` of the shapes world and their full captions."""
    from fifo_shapes.world import random_clips, render

    generator = torch.Generator().manual_seed(seed)
    clips = random_clips(count, frames, generator)
    return render(clips), [clips.caption(row).text for row in range(count)]


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
