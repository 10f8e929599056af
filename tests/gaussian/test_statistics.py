"""The whole engine as a statistical experiment: FIFO output of the AR(1) backbone against
(a) the exact stationary statistics the engine's own geometry and steps imply (fifo_gaussian.theory),
which catches wiring bugs with tolerances set by sampling error alone, and (b) the true process,
which the default configuration must match within stated tolerances.

Each run: channels=1, a 4x4 latent, so every frame gives 16 independent series.

Sampling error (Bartlett 1946, Gaussian series of length N with autocorrelation r(h)):
    Var(mean x^2)  ~ (2 gamma0^2 / N) * sum_h r(h)^2
    Var(r_k hat)   ~ (1 / N) * sum_h [r(h)^2 + r(h+k) r(h-k) - 4 r(k) r(h) r(h-k) + 2 r(h)^2 r(k)^2]
evaluated with the process's r(h) = rho^|h| (the engine's output is within a few hundredths of it,
which changes these errors by a few percent). Estimates use the known mean 0. Tolerances are
``Z = 4`` standard errors: a false alarm about once in 16,000 comparisons.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fifo_core.partition import QueueLayout
from fifo_core.config import RunConfig
from fifo_core.sampling import FifoSampler
from fifo_gaussian import theory
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone

Z = 4.0
LAGS = 4
SIDE = 4  # a 4x4 latent: 16 series per frame
FRAMES = 3000

# Stated tolerances for the default configuration against the true process, beyond sampling
# error. They bound the exact bias (theory) of the defaults, which test_default_bias pins:
# variance -0.068 (DDIM discretisation over S = 64 levels: -0.051; FIFO's f = 16 windows: -0.017),
# lag-k autocorrelation at most 0.024 below rho^k (the windows cut dependence at their edges).
VARIANCE_TOLERANCE = 0.08
AUTOCORRELATION_TOLERANCE = 0.03


def _r(rho: float, h: int) -> float:
    return rho ** abs(h)


def variance_standard_error(variance: float, rho: float, samples: int) -> float:
    return variance * math.sqrt(2 * (1 + rho**2) / (1 - rho**2) / samples)


def autocorrelation_standard_error(rho: float, lag: int, samples: int, horizon: int = 200) -> float:
    total = 0.0
    for h in range(-horizon, horizon + 1):
        r_h, r_k = _r(rho, h), _r(rho, lag)
        total += r_h**2 + _r(rho, h + lag) * _r(rho, h - lag) - 4 * r_k * r_h * _r(rho, h - lag) + 2 * r_h**2 * r_k**2
    return math.sqrt(total / samples)


def generate(backbone: GaussianAR1Backbone, layout: QueueLayout, sampler: str, start: str, frames: int, seed: int = 0) -> torch.Tensor:
    """``frames`` clean latents as ``'t series'`` float64, straight from the engine's loop."""
    config = RunConfig(
        prompt="ignored", window=layout.window, partitions=layout.partitions, lookahead=layout.lookahead,
        height=SIDE, width=SIDE, guidance_scale=1.0, sampler=sampler, eta=0.0 if sampler == "ddim" else None, seed=seed, start=start,
    )
    fifo = FifoSampler(backbone, config.resolve(backbone.defaults))
    latents = [clean.latent.double().reshape(-1) for clean in itertools.islice(fifo.latents(), frames)]
    return torch.stack(latents)


def estimate(series: torch.Tensor) -> theory.OutputStatistics:
    variance = float((series**2).mean())
    lags = tuple(float((series[:-k] * series[k:]).mean()) / variance for k in range(1, LAGS + 1))
    return theory.OutputStatistics(variance, lags)


def assert_close(measured: theory.OutputStatistics, expected: theory.OutputStatistics, rho: float, samples: int, allowance=(0.0, 0.0)):
    """Each statistic within ``allowance`` (variance, autocorrelation) plus Z standard errors."""
    variance_limit = allowance[0] + Z * variance_standard_error(expected.variance, rho, samples)
    assert abs(measured.variance - expected.variance) <= variance_limit, (
        f"variance {measured.variance:.4f}, expected {expected.variance:.4f} +- {variance_limit:.4f}"
    )
    for lag, (got, want) in enumerate(zip(measured.autocorrelation, expected.autocorrelation), start=1):
        limit = allowance[1] + Z * autocorrelation_standard_error(rho, lag, samples)
        assert abs(got - want) <= limit, f"lag-{lag} autocorrelation {got:.4f}, expected {want:.4f} +- {limit:.4f}"


def assert_no_drift(series: torch.Tensor, rho: float, variance: float) -> None:
    """First half vs second half, and the least-squares slope of per-frame variance over time."""
    frames, width = series.shape
    half = frames // 2
    first, second = float((series[:half] ** 2).mean()), float((series[half:] ** 2).mean())
    limit = Z * math.sqrt(2) * variance_standard_error(variance, rho, half * width)
    assert abs(first - second) <= limit, f"variance moved from {first:.4f} to {second:.4f} (limit {limit:.4f})"
    # per-frame mean squares m_t: Var(m_t) = 2 var^2 / width, lag-h correlation rho^(2h), so the
    # slope's variance is Var(m_t) (1 + rho^2) / (1 - rho^2) / sum (t - mean t)^2.
    per_frame = (series**2).mean(dim=1)
    time = torch.arange(frames, dtype=torch.float64)
    centred = time - time.mean()
    slope = float((centred * (per_frame - per_frame.mean())).sum() / (centred**2).sum())
    slope_error = math.sqrt(2 * variance**2 / width * (1 + rho**2) / (1 - rho**2) / float((centred**2).sum()))
    assert abs(slope) <= Z * slope_error, (
        f"variance drifts by {slope * frames:+.4f} over {frames} frames (limit {Z * slope_error * frames:.4f})"
    )


ENGINE_CASES = [
    pytest.param("ramp", True, "ddim", id="ramp-lookahead"),
    pytest.param("ramp", False, "ddim", id="ramp-no-lookahead"),
    pytest.param("clip", True, "ddim", id="clip-lookahead"),
    pytest.param("clip", False, "ddim", id="clip-no-lookahead"),
    pytest.param("ramp", True, "ddpm", id="ramp-lookahead-ddpm"),
]


@pytest.mark.parametrize(("start", "lookahead", "sampler"), ENGINE_CASES)
def test_engine_matches_its_exact_stationary_statistics(start, lookahead, sampler):
    """The simulated output equals what the core's windows, levels and steps imply, to within
    sampling error; anything else is a wiring bug in the loop, the queue or the starts.
    A small layout (f = 8, n = 2) keeps it fast; the prediction is exact for any layout."""
    rho = 0.5
    backbone = GaussianAR1Backbone(rho=rho, channels=1, downsample=1)
    layout = QueueLayout(8, 2, lookahead)
    series = generate(backbone, layout, sampler, start, FRAMES)
    expected = theory.fifo_statistics(backbone, layout, backbone.schedule.grid(layout.num_levels), sampler, lags=LAGS)
    # The prediction is for the steady state; both starts reach it after at most S + f frames.
    steady = series[layout.num_levels + layout.window :]
    assert_close(estimate(steady), expected, rho, steady.numel())
    assert_no_drift(series, rho, expected.variance)


def test_default_bias_is_within_stated_tolerances():
    """The defaults' exact output statistics against the process: this is where the stated
    tolerances come from, and it fails if a change of defaults makes the match worse."""
    backbone = GaussianAR1Backbone()
    layout = QueueLayout(DEFAULTS.window, DEFAULTS.partitions, DEFAULTS.lookahead)
    exact = theory.fifo_statistics(backbone, layout, backbone.schedule.grid(layout.num_levels), DEFAULTS.sampler, DEFAULTS.eta)
    truth = theory.process_statistics(backbone.rho)
    assert abs(exact.variance - truth.variance) <= VARIANCE_TOLERANCE
    for got, want in zip(exact.autocorrelation, truth.autocorrelation):
        assert abs(got - want) <= AUTOCORRELATION_TOLERANCE


def test_default_configuration_matches_the_process():
    """A few thousand frames of the default configuration: variance and lag-1..4 autocorrelation
    match the AR(1) process (1, rho^k) within the stated tolerances plus sampling error, without drift."""
    backbone = GaussianAR1Backbone(channels=1, downsample=1)
    layout = QueueLayout(DEFAULTS.window, DEFAULTS.partitions, DEFAULTS.lookahead)
    series = generate(backbone, layout, DEFAULTS.sampler, "ramp", FRAMES)
    truth = theory.process_statistics(backbone.rho, LAGS)
    assert_close(estimate(series), truth, backbone.rho, series.numel(), (VARIANCE_TOLERANCE, AUTOCORRELATION_TOLERANCE))
    assert_no_drift(series, backbone.rho, 1.0 - VARIANCE_TOLERANCE)


def test_windows_are_what_costs_fifo_its_fidelity():
    """Why FIFO's output falls short of ordinary sampling: the windows. With one window over the
    whole queue plus one clean past frame (sufficient for a Markov process), FIFO's exact output
    equals ordinary sampling's; with FIFO's real windows of f frames it does not."""
    from types import SimpleNamespace

    from fifo_core.partition import Window

    backbone = GaussianAR1Backbone(rho=0.5, channels=1, downsample=1)
    levels = 32
    grid = backbone.schedule.grid(levels)
    whole = SimpleNamespace(context=1, num_levels=levels, length=levels + 1, windows=(Window(0, levels + 1, 1, levels + 1),))
    ideal = theory.fifo_statistics(backbone, whole, grid)
    ordinary = theory.ordinary_statistics(backbone, 8, grid)
    assert ideal.variance == pytest.approx(ordinary.variance, abs=2e-3)
    assert ideal.autocorrelation == pytest.approx(ordinary.autocorrelation, abs=2e-3)
    windowed = theory.fifo_statistics(backbone, QueueLayout(8, 4, True), grid)
    assert ordinary.variance - windowed.variance > 0.02
    assert ordinary.autocorrelation[0] - windowed.autocorrelation[0] > 0.02


def test_clip_start_first_frames_have_steady_state_variance():
    """The clip start's first f frames come from an ordinary clip noised back onto the diagonal;
    that noise must be independent of the clip, or their variance is inflated (it was 1.6 instead
    of 0.8 for the first frame before the core fixed the noise reuse). 40 seeds x 16 series per frame."""
    backbone = GaussianAR1Backbone(rho=0.5, channels=1, downsample=1)
    layout = QueueLayout(8, 2, True)
    expected = theory.fifo_statistics(backbone, layout, backbone.schedule.grid(layout.num_levels)).variance
    runs = torch.stack([generate(backbone, layout, "ddim", "clip", layout.window, seed) for seed in range(40)])
    per_frame = (runs**2).mean(dim=(0, 2))
    # Independent samples (different seeds and series): SE = var * sqrt(2 / 640). The first frames
    # of an ordinary clip are allowed 0.1 of start-up difference (ordinary vs FIFO output).
    limit = 0.1 + Z * expected * math.sqrt(2 / runs[:, 0].numel())
    assert (per_frame - expected).abs().max() <= limit, f"first-frame variances {per_frame.tolist()}, steady state {expected:.3f}"
