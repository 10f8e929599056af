"""The paper's relative-MSE claims (Fig. 5 / Table 2) on the single-level AR(1) backbone.

What an honest Gaussian model gives (rho = 0.9, f = 8; `python benchmarks/rel_mse.py`):
* diagonal denoising alone (n = 1, no lookahead) is worse than the model's own prediction at low
  noise (rel_mse 1.19 at t = 124) but better at high noise (0.77 at t = 749), mean 0.96 -- the
  paper's "> 1" holds only for the low-noise half: a linear Bayesian denoiser still gains from the
  cleaner frames before a frame, where a neural network off its training distribution may not;
* larger n shrinks the gap: the worst level falls from 1.23 (n = 2) to 1.12 (4) and 1.06 (8), and
  the mean distance from 1 falls too; the mean itself stays at 1.00 (gains and losses cancel);
* n with lookahead is below 1 at every level above t ~ 420 and within 1% of 1 below it (the first
  frame of each written half), with a mean below 1 (0.966 at n = 4, 0.983 at n = 8).

Margins: the estimates use 4096 draws per level with common random numbers; across seeds the
per-level ratios move by about 0.01-0.03, and every margin below is several times that.
"""

from __future__ import annotations

import pytest
import torch

from fifo_core.partition import QueueLayout
from fifo_core.rel_mse import diagonal_sites
from fifo_gaussian.ar1 import GaussianAR1Backbone
from fifo_gaussian.rel_mse import exact_rel_mse, monte_carlo_rel_mse

RHO, WINDOW, SEED, DRAWS = 0.9, 8, 0, 4096


@pytest.fixture(scope="module")
def backbone() -> GaussianAR1Backbone:
    return GaussianAR1Backbone(rho=RHO, denoiser="single-level", channels=1, downsample=1)


@pytest.fixture(scope="module")
def table(backbone):
    """Monte-Carlo rel_mse for the benchmark's configurations, keyed by (n, lookahead)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {}
        for partitions, lookahead in [(1, False), (2, False), (4, False), (8, False), (4, True), (8, True)]:
            layout = QueueLayout(WINDOW, partitions, lookahead)
            results[partitions, lookahead] = monte_carlo_rel_mse(backbone, layout, backbone.schedule.grid(layout.num_levels), DRAWS, SEED)
        return results
    finally:
        torch.set_num_threads(before)


def test_sites_follow_the_steady_state_diagonal():
    """The level-l frame is in the window that writes slot context + l - 1, with the queue's levels."""
    layout = QueueLayout(4, 2, True)
    sites = diagonal_sites(layout)
    assert [site.level for site in sites] == list(range(1, 9))
    # context 2, write ranges of 2: the level-3 frame (slot 4) is read by slots 2..5 = levels 1..4
    assert sites[2].levels.tolist() == [1, 2, 3, 4] and sites[2].position == 2
    # with lookahead every written frame has at least f // 2 cleaner frames before it
    assert all(site.position >= layout.context for site in sites)
    assert QueueLayout(4, 2, False).windows[0].read == range(0, 4)
    assert [site.position for site in diagonal_sites(QueueLayout(4, 2, False))] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_monte_carlo_agrees_with_the_closed_form(backbone, table):
    for (partitions, lookahead), estimate in table.items():
        layout = QueueLayout(WINDOW, partitions, lookahead)
        exact = exact_rel_mse(backbone, layout, backbone.schedule.grid(layout.num_levels))
        assert torch.allclose(estimate.original, exact.original, rtol=0.08)
        assert torch.allclose(estimate.ratio, exact.ratio, rtol=0.05), (partitions, lookahead)
        assert float(estimate.ratio.mean()) == pytest.approx(float(exact.ratio.mean()), abs=0.01)


def test_per_frame_denoiser_is_exact_so_its_same_level_error_matches_single_level(backbone):
    """With every frame at one level the two denoisers are the same model (the reference point)."""
    per_frame = GaussianAR1Backbone(rho=RHO, denoiser="per-frame", channels=1, downsample=1)
    layout = QueueLayout(WINDOW, 2, False)
    grid = backbone.schedule.grid(layout.num_levels)
    assert torch.allclose(exact_rel_mse(per_frame, layout, grid).original, exact_rel_mse(backbone, layout, grid).original)


def test_diagonal_denoising_alone_is_worse_at_low_noise(table):
    result = table[1, False]
    low_noise = result.timesteps <= 500
    assert bool((result.ratio[low_noise] > 1.0).all()), result.ratio.tolist()
    assert float(result.ratio[0]) > 1.1  # the cleanest level suffers most: 1.19 at seed 0


def test_larger_n_shrinks_the_train_inference_gap(table):
    worst = [float(table[n, False].ratio.max()) for n in (2, 4, 8)]
    assert worst[0] > worst[1] + 0.05 and worst[1] > worst[2] + 0.03, worst  # 1.23, 1.12, 1.06
    distance = [float((table[n, False].ratio - 1).abs().mean()) for n in (1, 2, 4, 8)]
    assert all(a > b + 0.01 for a, b in zip(distance, distance[1:])), distance


def test_lookahead_is_below_one_except_at_early_timesteps(backbone, table):
    """Below 1 everywhere on the noisier part of the grid; on the low-noise part (t < 450) some
    levels -- the first of each written half -- sit up to 1% above 1. The sharp claim is checked on
    the closed form (at n = 8 the true margin, 0.997, is within Monte-Carlo noise of 1); the
    Monte-Carlo table must agree on the coarse ones."""
    for partitions in (4, 8):
        layout = QueueLayout(WINDOW, partitions, True)
        exact = exact_rel_mse(backbone, layout, backbone.schedule.grid(layout.num_levels))
        above = exact.timesteps[exact.ratio >= 1.0]
        assert bool((above < 450).all()), above.tolist()
        assert float(exact.ratio.max()) < 1.01
        result = table[partitions, True]
        assert float(result.ratio.max()) < 1.02
        assert float((result.ratio < 1).double().mean()) >= 0.65  # 0.75 and 0.78 at seed 0
        assert float(result.ratio.mean()) < float(table[partitions, False].ratio.mean()) - 0.01
