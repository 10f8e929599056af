"""Relative MSE of noise prediction on FIFO's diagonal, per configuration (paper Fig. 5 / Table 2).

    python benchmarks/rel_mse.py                 # f = 8: n = 1, 2, 4, 8 without lookahead; n = 1, 4, 8 with
    python benchmarks/rel_mse.py --seed 3 --rho 0.7 --draws 8192
    python benchmarks/rel_mse.py --learned --clips 64 --plot rel_mse.png   # the default model, fifo-shapes
    python benchmarks/rel_mse.py --rhos 0.5 0.9 0.96 0.99 -f 16           # closed form only: the regimes
    python benchmarks/rel_mse.py --learned --weights adapters/fifo_shapes/weights/base   # trained on one-level clips only

``--learned`` measures the default model (fifo-shapes) on clips of its world instead
(:mod:`fifo_core.rel_mse` on clips from :mod:`fifo_shapes.rel_mse`), every configuration with and without lookahead, and prints the
Gaussian backbone's closed-form mean beside it at rho 0.9, at the world's own adjacent-frame
correlation (:func:`fifo_core.rel_mse.adjacent_frame_correlation`, rounded) and at 0.99; ``--plot``
draws rel_mse against timestep for every configuration as a PNG, naming the machine and command.

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
import os
import sys
import time

import torch

from fifo_core.partition import QueueLayout
from fifo_core.rel_mse import RelMse
from fifo_gaussian.ar1 import GaussianAR1Backbone
from fifo_gaussian.rel_mse import exact_rel_mse, monte_carlo_rel_mse

CONFIGURATIONS = [(1, False), (2, False), (4, False), (8, False), (1, True), (4, True), (8, True)]
LEARNED_CONFIGURATIONS = [(1, False), (2, False), (4, False), (8, False), (1, True), (2, True), (4, True), (8, True)]
PROBE_TIMESTEPS = (100, 250, 500, 750, 999)
PLOT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def _name(partitions: int, lookahead: bool) -> str:
    return f"n={partitions} {'lookahead' if lookahead else 'no lookahead'}"


def _header() -> str:
    """The columns every table starts with; :func:`_row` fills them."""
    probes = " ".join(f"{'t~' + str(t):>7}" for t in PROBE_TIMESTEPS)
    return f"{'configuration':<22}{'S':>4} {'mean':>6} {'max':>6} {probes} {'<1':>5}"


def _row(ratio: torch.Tensor, timesteps: torch.Tensor) -> str:
    at = [float(ratio[(timesteps - t).abs().argmin()]) for t in PROBE_TIMESTEPS]
    return f"{float(ratio.mean()):6.3f} {float(ratio.max()):6.3f} " + " ".join(f"{value:7.3f}" for value in at) + f" {float((ratio < 1).double().mean()):5.2f}"


def plot(results: dict[str, RelMse], path: str, title: str, footer: tuple[str, ...] = ()) -> None:
    """rel_mse against timestep, one line per configuration, as a PNG (Pillow only); ``footer``
    lines (the machine, the command) go under the axis."""
    from PIL import Image, ImageDraw

    width, left, right, top = 900, 70, 230, 40
    bottom = 50 + 16 * len(footer)
    height = 510 + bottom
    ratios = torch.cat([result.ratio for result in results.values()])
    low, high = min(float(ratios.min()), 0.9), max(float(ratios.max()), 1.1)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def at(timestep: float, value: float) -> tuple[float, float]:
        x = left + (width - left - right) * timestep / 1000
        y = top + (height - top - bottom) * (high - value) / (high - low)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.line([at(0, 1.0), at(1000, 1.0)], fill=(160, 160, 160), width=1)
    for timestep in range(0, 1001, 250):
        x, y = at(timestep, low)
        draw.text((x - 10, y + 8), str(timestep), fill="black")
    for step in range(6):
        value = low + (high - low) * step / 5
        x, y = at(0, value)
        draw.text((x - 45, y - 6), f"{value:.2f}", fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text((width // 2 - 60, height - bottom + 28), "timestep of the level", fill="black")
    for index, (name, result) in enumerate(results.items()):
        colour = PLOT_COLOURS[index % len(PLOT_COLOURS)]
        points = [at(float(t), float(r)) for t, r in zip(result.timesteps, result.ratio)]
        draw.line(points, fill=colour, width=2)
        draw.text((width - right + 15, top + 18 * index), name, fill=colour)
    for index, line in enumerate(footer):
        draw.text((left, height - 16 * (len(footer) - index) - 4), line, fill=(90, 90, 90))
    image.save(path)


def parse_configuration(text: str) -> tuple[int, bool]:
    partitions, _, lookahead = text.partition(":")
    if lookahead not in ("on", "off") or not partitions.isdigit() or int(partitions) < 1:
        raise argparse.ArgumentTypeError(f"a configuration is N:on or N:off (partitions and lookahead), got {text!r}")
    return int(partitions), lookahead == "on"


def _footer(args: argparse.Namespace) -> tuple[str, ...]:
    return (f"machine: {args.machine}, {torch.get_num_threads()} torch thread", "command: python benchmarks/rel_mse.py " + " ".join(args.argv))


def learned(args: argparse.Namespace) -> None:
    """The default model's rel_mse per configuration, with the Gaussian closed form beside it."""
    from fifo_core.api import load_backbone
    from fifo_core.rel_mse import adjacent_frame_correlation, backbone_rel_mse
    from fifo_shapes.rel_mse import world_clips

    backbone = load_backbone("fifo-shapes", {"device": args.device, "threads": 1} | ({"weights": args.weights} if args.weights else {}))
    clips, captions = world_clips(args.clips, args.window, args.seed)
    conditioning = [backbone.encode_prompt(text) for text in captions]
    world_rho = adjacent_frame_correlation(world_clips(1024, args.window, args.seed + 1)[0])
    rhos = (0.9, round(world_rho, 2), 0.99)
    gaussian = {rho: GaussianAR1Backbone(rho=rho, denoiser="single-level", channels=1, downsample=1) for rho in rhos}
    weights = f" (weights {args.weights})" if args.weights else ""
    print(f"rel_mse, fifo-shapes{weights} on {args.clips} clips of its world, f={args.window}, seed={args.seed}, device {args.device}, "
          f"{torch.get_num_threads()} torch thread")
    print(f"adjacent-frame correlation of the world's pixels (1024 clips): {world_rho:.3f}; AR(1) columns: closed-form mean rel_mse at rho")
    print(f"{_header()} " + " ".join(f"{'AR ' + str(rho):>8}" for rho in rhos))
    results = {}
    for partitions, lookahead in args.only or LEARNED_CONFIGURATIONS:
        layout = QueueLayout(args.window, partitions, lookahead)
        result = backbone_rel_mse(backbone, layout, clips, conditioning, seed=args.seed)
        results[_name(partitions, lookahead)] = result
        closed = [float(exact_rel_mse(model, layout, model.schedule.grid(layout.num_levels)).ratio.mean()) for model in gaussian.values()]
        print(f"{_name(partitions, lookahead):<22}{layout.num_levels:>4} {_row(result.ratio, result.timesteps)} " + " ".join(f"{value:8.3f}" for value in closed), flush=True)
    if args.plot:
        plot(results, args.plot, f"rel_mse of fifo-shapes{weights}, {args.clips} clips of its world, f={args.window}", _footer(args))
        print(f"wrote {args.plot}")


def regimes(args: argparse.Namespace) -> None:
    """The closed form alone, for several rho: where the paper's ordering appears."""
    print(f"closed-form rel_mse of the single-level AR(1) backbone, f={args.window}: mean over levels (fraction of levels below 1)")
    print(f"{'configuration':<22}{'S':>4} " + " ".join(f"{'rho ' + str(rho):>14}" for rho in args.rhos))
    models = [GaussianAR1Backbone(rho=rho, denoiser="single-level", channels=1, downsample=1) for rho in args.rhos]
    for partitions, lookahead in args.only or LEARNED_CONFIGURATIONS:
        layout = QueueLayout(args.window, partitions, lookahead)
        cells = []
        for model in models:
            ratio = exact_rel_mse(model, layout, model.schedule.grid(layout.num_levels)).ratio
            cells.append(f"{float(ratio.mean()):7.3f} ({float((ratio < 1).double().mean()):4.2f})")
        print(f"{_name(partitions, lookahead):<22}{layout.num_levels:>4} " + " ".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="Monte-Carlo seed")
    parser.add_argument("--rho", type=float, default=0.9, help="AR(1) coefficient (strong dependence shows the gap best)")
    parser.add_argument("--window", "-f", type=int, default=8, help="window f")
    parser.add_argument("--draws", type=int, default=4096, help="Monte-Carlo windows per level")
    parser.add_argument("--learned", action="store_true", help="measure the default model (fifo-shapes) on clips of its world")
    parser.add_argument("--clips", type=int, default=64, help="with --learned: clips of the world per level")
    parser.add_argument("--device", default="cpu", help="with --learned: the model's torch device")
    parser.add_argument("--weights", help="with --learned: a fifo-shapes weights folder (the shipped weights when unset), e.g. "
                        "adapters/fifo_shapes/weights/base, the first training stage, which saw only clips of one noise level")
    parser.add_argument("--plot", metavar="PNG", help="also draw rel_mse against timestep into this PNG file")
    parser.add_argument("--only", type=parse_configuration, nargs="+", metavar="N:on|off", help="these configurations only (partitions:lookahead)")
    parser.add_argument("--rhos", type=float, nargs="+", metavar="RHO", help="print only the AR(1) closed form's means at these rho")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="how the plot names the machine")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # Thousands of tiny matrix products: extra intra-op threads only spin on a shared machine.
    torch.set_num_threads(1)
    began = time.perf_counter()
    if args.rhos:
        regimes(args)
        print(f"({time.perf_counter() - began:.1f} s)")
        return
    if args.learned:
        learned(args)
        print(f"({time.perf_counter() - began:.1f} s)")
        return
    backbone = GaussianAR1Backbone(rho=args.rho, denoiser="single-level", channels=1, downsample=1)
    print(f"rel_mse, single-level AR(1) backbone, rho={args.rho}, f={args.window}, {args.draws} draws/level, seed={args.seed}")
    print(f"{_header()} {'exact':>6}")
    results = {}
    for partitions, lookahead in args.only or CONFIGURATIONS:
        layout = QueueLayout(args.window, partitions, lookahead)
        grid = backbone.schedule.grid(layout.num_levels)
        result = monte_carlo_rel_mse(backbone, layout, grid, args.draws, args.seed)
        results[_name(partitions, lookahead)] = result
        exact = float(exact_rel_mse(backbone, layout, grid).ratio.mean())
        print(f"{_name(partitions, lookahead):<22}{layout.num_levels:>4} {_row(result.ratio, result.timesteps)} {exact:6.3f}")
    if args.plot:
        plot(results, args.plot, f"rel_mse of the single-level AR(1) backbone, rho={args.rho}, f={args.window}", _footer(args))
        print(f"wrote {args.plot}")
    print(f"({time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
