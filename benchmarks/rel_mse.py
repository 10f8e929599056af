"""Relative MSE of noise prediction on FIFO's diagonal, per configuration (paper Fig. 5 / Table 2).

    python benchmarks/rel_mse.py                 # f = 8: n = 1, 2, 4, 8 without lookahead; n = 1, 4, 8 with
    python benchmarks/rel_mse.py --seed 3 --rho 0.7 --draws 8192

The model is the Gaussian AR(1) backbone with the "single-level" denoiser: the exact denoiser for
clips whose frames share one noise level, i.e. a model trained only on ordinary clips. For every
level ``l`` of the configuration's grid, Monte-Carlo windows are noised at the levels FIFO's
steady-state window around the level-``l`` frame has (the core's QueueLayout and LevelGrid), and
the backbone's prediction for that frame is compared with its prediction when the whole window is
at level ``l``: ``rel_mse(l) = E|eps_diag - eps|^2 / E|eps_orig - eps|^2`` on the same draws.
Columns: mean and max over levels, rel_mse at the grid levels nearest a few timesteps, the fraction
of levels below 1, and (``exact``) the closed-form mean as a check on the estimate.
"""

from __future__ import annotations

import argparse
import time

import torch

from fifo_core.partition import QueueLayout
from fifo_gaussian.ar1 import GaussianAR1Backbone
from fifo_gaussian.rel_mse import exact_rel_mse, monte_carlo_rel_mse

CONFIGURATIONS = [(1, False), (2, False), (4, False), (8, False), (1, True), (4, True), (8, True)]
PROBE_TIMESTEPS = (100, 250, 500, 750, 999)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="Monte-Carlo seed")
    parser.add_argument("--rho", type=float, default=0.9, help="AR(1) coefficient (strong dependence shows the gap best)")
    parser.add_argument("--window", "-f", type=int, default=8, help="window f")
    parser.add_argument("--draws", type=int, default=4096, help="Monte-Carlo windows per level")
    args = parser.parse_args(argv)
    # Thousands of tiny matrix products: extra intra-op threads only spin on a shared machine.
    torch.set_num_threads(1)
    began = time.perf_counter()
    backbone = GaussianAR1Backbone(rho=args.rho, denoiser="single-level", channels=1, downsample=1)
    probes = " ".join(f"{'t~' + str(t):>7}" for t in PROBE_TIMESTEPS)
    print(f"rel_mse, single-level AR(1) backbone, rho={args.rho}, f={args.window}, {args.draws} draws/level, seed={args.seed}")
    print(f"{'configuration':<22}{'S':>4} {'mean':>6} {'max':>6} {probes} {'<1':>5} {'exact':>6}")
    for partitions, lookahead in CONFIGURATIONS:
        layout = QueueLayout(args.window, partitions, lookahead)
        grid = backbone.schedule.grid(layout.num_levels)
        result = monte_carlo_rel_mse(backbone, layout, grid, args.draws, args.seed)
        ratio = result.ratio
        at = [float(ratio[(result.timesteps - t).abs().argmin()]) for t in PROBE_TIMESTEPS]
        exact = float(exact_rel_mse(backbone, layout, grid).ratio.mean())
        name = f"n={partitions} {'lookahead' if lookahead else 'no lookahead'}"
        print(
            f"{name:<22}{layout.num_levels:>4} {float(ratio.mean()):6.3f} {float(ratio.max()):6.3f} "
            + " ".join(f"{value:7.3f}" for value in at)
            + f" {float((ratio < 1).double().mean()):5.2f} {exact:6.3f}"
        )
    print(f"({time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
