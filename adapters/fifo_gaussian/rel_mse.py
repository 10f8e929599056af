"""Relative MSE of noise prediction on FIFO's diagonal (paper Fig. 5 / Table 2, REFERENCE.md §2).

For a level ``l`` (timestep ``tau_{l-1}``) and a configuration (``f``, ``n``, lookahead):

    rel_mse(l) = E || eps_hat_diag - eps ||^2 / E || eps_hat_orig - eps ||^2

* ``eps_hat_diag``: the backbone's prediction for the frame at level ``l`` inside the window that
  writes it in FIFO's steady state, every other frame of that window at the level the
  configuration gives its slot (lookahead context frames are clean);
* ``eps_hat_orig``: the backbone's prediction for a frame at the same position of the window when
  every frame of the window is at level ``l`` (what the model does in ordinary sampling).

Both errors are measured on the same draws (clean AR(1) windows and noise), so Monte-Carlo noise
largely cancels in the ratio. The geometry is the core's: windows from ``QueueLayout``, levels
from the schedule's ``LevelGrid``. Because everything is Gaussian and linear, the expectation is
also available in closed form (:func:`exact_rel_mse`), which the tests use to check the estimate.

The sites and the result type are the core's (:mod:`fifo_core.rel_mse`, which also measures any
backbone on clips it is given); this module adds the AR(1) process's own draws and closed form.

Shapes: a batch of windows is ``'f m'`` (``m`` independent draws); per-level results ``(S,)``.
"""

from __future__ import annotations

import torch

from fifo_core.partition import QueueLayout
from fifo_core.rel_mse import DiagonalSite, RelMse, diagonal_sites
from fifo_core.schedule import LevelGrid

from fifo_gaussian.ar1 import GaussianAR1Backbone

__all__ = ["DiagonalSite", "RelMse", "diagonal_sites", "exact_rel_mse", "monte_carlo_rel_mse"]


def _predict_row(backbone: GaussianAR1Backbone, noisy: torch.Tensor, timesteps: torch.Tensor, position: int) -> torch.Tensor:
    """The backbone's own ``predict`` on a window of ``m`` draws (``'f m'``): returns ``(m,)``."""
    frames, draws = noisy.shape
    latents = noisy.T.reshape(1, 1, draws, frames).permute(0, 1, 3, 2)[..., None, :].contiguous()  # 'b c f h w', h=1
    output = backbone.predict(latents, timesteps[None].float(), [""])
    return output[0, 0, position, 0].double()


def monte_carlo_rel_mse(
    backbone: GaussianAR1Backbone, layout: QueueLayout, grid: LevelGrid, draws: int = 4096, seed: int = 0
) -> RelMse:
    """Estimate ``rel_mse`` per level from ``draws`` windows per level (float64 throughout)."""
    generator = torch.Generator().manual_seed(seed)
    factor = torch.linalg.cholesky(backbone.covariance(layout.window))
    diagonal, original = [], []
    for site in diagonal_sites(layout):
        clean = factor @ torch.randn(layout.window, draws, generator=generator, dtype=torch.float64)
        noise = torch.randn(layout.window, draws, generator=generator, dtype=torch.float64)
        target = noise[site.position]
        errors = []
        for levels in (site.levels, torch.full_like(site.levels, site.level)):
            noisy = grid.signal[levels][:, None] * clean + grid.noise[levels][:, None] * noise
            predicted = _predict_row(backbone, noisy, grid.timesteps[levels], site.position)
            errors.append(float(((predicted - target) ** 2).mean()))
        diagonal.append(errors[0])
        original.append(errors[1])
    return RelMse(grid.timesteps[1:].clone(), torch.tensor(diagonal, dtype=torch.float64), torch.tensor(original, dtype=torch.float64))


def exact_rel_mse(backbone: GaussianAR1Backbone, layout: QueueLayout, grid: LevelGrid) -> RelMse:
    """The same expectation in closed form: the error ``E_j y - eps_j`` with
    ``y = A x + B eps`` is ``(E_j A) x + (E_j B - e_j) eps``, whose mean square is
    ``(E_j A) Sigma (E_j A)^T + ||E_j B - e_j||^2``."""
    sigma = backbone.covariance(layout.window)
    diagonal, original = [], []
    for site in diagonal_sites(layout):
        unit = torch.zeros(layout.window, dtype=torch.float64)
        unit[site.position] = 1.0
        for levels, into in ((site.levels, diagonal), (torch.full_like(site.levels, site.level), original)):
            row = backbone.noise_matrix(grid.timesteps[levels])[site.position]
            signal_part = row * grid.signal[levels]
            noise_part = row * grid.noise[levels] - unit
            into.append(float(signal_part @ sigma @ signal_part + noise_part @ noise_part))
    return RelMse(grid.timesteps[1:].clone(), torch.tensor(diagonal, dtype=torch.float64), torch.tensor(original, dtype=torch.float64))
