"""Exact output statistics of FIFO sampling with the Gaussian backbone, without sampling.

With the AR(1) backbone every operation of the engine is linear in Gaussian variables: the
denoiser is a fixed matrix for fixed timesteps, the scheduler step is ``x' = c_x x + c_e eps + s z``
and fresh noise enters at the tail. So each independent latent series evolves, in steady state, as

    q_{t+1} = T q_t + noise,       Cov(noise) = Q,

and its stationary covariance solves ``C = T C T^T + Q``. Keeping the last ``H`` outputs in the
state turns that covariance into the exact variance and lag-k autocovariances of the output
frames. The same algebra gives the output of ordinary sampling (one window, every frame at the same
level). This separates three things a simulation cannot: what the sampler's discretisation costs
(ordinary sampling vs the true process), what FIFO's windows add (FIFO vs ordinary sampling) and
what a bug adds (the engine's simulated output vs this prediction).

The geometry comes from the core (``QueueLayout`` windows, the schedule's ``LevelGrid``) and the
step coefficients from the core's own ``ddim_step``, so a prediction differs from the engine only
if the loop wires them differently -- which is what the statistics tests look for.

Shapes: a covariance over ``m`` scalar slots is ``(m, m)`` float64; ``E`` maps a window's noisy
values ``(f,)`` to its noise prediction ``(f,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fifo_core.partition import QueueLayout
from fifo_core.schedule import LevelGrid
from fifo_core.steps import FrameLevels, ddim_step, sampler_eta

from fifo_gaussian.ar1 import GaussianAR1Backbone


@dataclass(frozen=True)
class StepCoefficients:
    """``x' = c_x x + c_e eps_hat + s z`` for a frame moving from level ``l`` to ``l - 1``,
    for ``l = 1..S`` (index ``l - 1``), each ``(S,)`` float64."""

    c_x: torch.Tensor
    c_e: torch.Tensor
    s: torch.Tensor

    @classmethod
    def from_core(cls, backbone: GaussianAR1Backbone, grid: LevelGrid, eta: float) -> StepCoefficients:
        """Read the coefficients off the core's step by feeding it unit inputs: it is linear in
        ``(x, model_output, z)``, so three evaluations give the whole update."""
        levels = torch.arange(1, grid.num_levels + 1)
        now, after = FrameLevels.gather(grid, levels), FrameLevels.gather(grid, levels - 1)
        ones, zeros = torch.ones(len(levels), 1, dtype=torch.float64), torch.zeros(len(levels), 1, dtype=torch.float64)
        kind = backbone.schedule.prediction_type

        def step(x: torch.Tensor, out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return ddim_step(x, out, now, after, kind, eta, z if eta > 0 else None)[:, 0]

        return cls(c_x=step(ones, zeros, zeros), c_e=step(zeros, ones, zeros), s=step(zeros, zeros, ones))


def denoiser_matrix(backbone: GaussianAR1Backbone, timesteps: torch.Tensor) -> torch.Tensor:
    """``E`` with ``eps_hat = E y`` for one window at ``timesteps`` ``(f,)``: the backbone's own
    prediction is linear in ``y``, so predicting for the identity returns its matrix."""
    return backbone.noise_matrix(timesteps)


@dataclass(frozen=True)
class OutputStatistics:
    """Variance and autocorrelations ``lag 1..K`` of the output series."""

    variance: float
    autocorrelation: tuple[float, ...]


def fifo_transition(
    backbone: GaussianAR1Backbone, layout: QueueLayout, grid: LevelGrid, eta: float, history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, Q)`` of one steady-state iteration for a state of ``history`` past outputs followed
    by the queue's slots (context, then levels ``1..S``), all after the dequeue-and-shift."""
    context, levels = layout.context, layout.num_levels
    size = history + layout.length
    steps = StepCoefficients.from_core(backbone, grid, eta)
    slot_levels = torch.cat([torch.zeros(context, dtype=torch.long), torch.arange(1, levels + 1)])
    update = torch.eye(size, dtype=torch.float64)
    step_noise = torch.zeros(size, dtype=torch.float64)
    for window in layout.windows:
        matrix = denoiser_matrix(backbone, grid.timesteps[slot_levels[window.read_start : window.read_stop]])
        for slot in window.write:
            level = int(slot_levels[slot])
            row = history + slot
            update[row, row] = steps.c_x[level - 1]
            columns = slice(history + window.read_start, history + window.read_stop)
            update[row, columns] += steps.c_e[level - 1] * matrix[slot - window.read_start]
            step_noise[row] = steps.s[level - 1]
    shift = torch.zeros(size, size, dtype=torch.float64)
    shift[torch.arange(size - 1), torch.arange(1, size)] = 1.0
    fresh = torch.zeros(size, dtype=torch.float64)
    fresh[-1] = 1.0
    transition = shift @ update
    noise = shift @ torch.diag(step_noise**2) @ shift.T + torch.outer(fresh, fresh)
    return transition, noise


def stationary_covariance(transition: torch.Tensor, noise: torch.Tensor, tolerance: float = 1e-13) -> torch.Tensor:
    """Solve ``C = T C T^T + Q`` by doubling: ``C_{2k} = C_k + T^k C_k T^k^T`` converges
    quadratically when the spectral radius of ``T`` is below 1 (the queue forgets)."""
    covariance, power = noise.clone(), transition.clone()
    for _ in range(64):
        increment = power @ covariance @ power.T
        covariance = covariance + increment
        power = power @ power
        if float(increment.abs().max()) < tolerance:
            return covariance
    raise RuntimeError(
        "the FIFO iteration did not reach a stationary state (spectral radius of the transition >= 1); "
        "check the layout and the step coefficients"
    )


def _statistics(covariance: torch.Tensor, lags: int) -> OutputStatistics:
    """Average the diagonals of a Toeplitz-in-expectation covariance of consecutive outputs."""
    variance = float(covariance.diagonal().mean())
    autocorrelation = tuple(float(covariance.diagonal(k).mean()) / variance for k in range(1, lags + 1))
    return OutputStatistics(variance, autocorrelation)


def fifo_statistics(
    backbone: GaussianAR1Backbone, layout: QueueLayout, grid: LevelGrid, sampler: str = "ddim", eta: float = 0.0, lags: int = 4
) -> OutputStatistics:
    """Exact stationary output statistics of the FIFO engine for this configuration."""
    history = max(lags + 1 - layout.context, 1)
    transition, noise = fifo_transition(backbone, layout, grid, sampler_eta(sampler, eta), history)
    covariance = stationary_covariance(transition, noise)
    # After the shift the newest outputs are the first history + context entries, oldest first.
    outputs = history + layout.context
    return _statistics(covariance[:outputs, :outputs][-(lags + 1) :, -(lags + 1) :], lags)


def ordinary_statistics(
    backbone: GaussianAR1Backbone, window: int, grid: LevelGrid, sampler: str = "ddim", eta: float = 0.0, lags: int = 4
) -> OutputStatistics:
    """Exact output statistics of ordinary sampling: one clip of ``window`` frames, every frame at
    the same level, walked down the same grid with the same sampler."""
    if lags >= window:
        raise ValueError(f"a clip of {window} frames has lags up to {window - 1}, asked for {lags}")
    steps = StepCoefficients.from_core(backbone, grid, sampler_eta(sampler, eta))
    covariance = torch.eye(window, dtype=torch.float64)
    identity = torch.eye(window, dtype=torch.float64)
    for level in range(grid.num_levels, 0, -1):
        matrix = denoiser_matrix(backbone, grid.timesteps[level].expand(window))
        update = steps.c_x[level - 1] * identity + steps.c_e[level - 1] * matrix
        covariance = update @ covariance @ update.T + steps.s[level - 1] ** 2 * identity
    return _statistics(covariance, lags)


def process_statistics(rho: float, lags: int = 4) -> OutputStatistics:
    """The true process: unit variance, autocorrelation ``rho^k``."""
    return OutputStatistics(1.0, tuple(rho**k for k in range(1, lags + 1)))
