"""Does a FIFO video of the default model decay over 10,000 frames? (paper Fig. 1)

    python benchmarks/no_decay.py                                  # 10,000 frames, windows of 500
    python benchmarks/no_decay.py --frames 10000 --save out/long.npz --plot docs/results/no_decay.png
    python benchmarks/no_decay.py --load out/long.npz --plot no_decay.png   # scores of saved frames again
    python benchmarks/no_decay.py --frames 200 --window 50         # minutes -> seconds

One FIFO video of fifo-shapes (the backbone's defaults, one prompt of the checker's evaluation
set, seed 0), scored frame by frame (:mod:`fifo_shapes.video_scores`): prompt agreement and its
aspects, motion consistency (exact steps, speed), frame-to-frame change and pixel statistics. The
table has one row per window of ``--window`` frames, then the last window against the first, the
slope of a least-squares line through the windows (per 1,000 frames) and the windows' standard
deviation (how far one window strays without any trend).
``--save`` keeps the frames at the world's 32x32 pixels (uint8, 3 KB a frame), so the scores can
be recomputed with ``--load`` without generating again.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from fifo_core.api import load_backbone
from fifo_shapes.agreement import sampler_for
from fifo_shapes.checker import evaluation_prompts
from fifo_shapes.video_scores import FrameScores, score_frames, world_frames
from fifo_shapes.world import Caption

COLUMNS = ("agrees", "colour", "shape", "motion", "exact_step", "speed", "change", "mean", "std", "area", "off_palette")
FRACTIONS = {"agrees", "colour", "shape", "motion", "background", "exact_step"}


def generate(caption: Caption, frames: int, seed: int, device: str, save: str | None, command: str) -> tuple[np.ndarray, float]:
    """``frames`` FIFO frames of ``caption`` at the world's pixels, and the seconds they took."""
    backbone = load_backbone("fifo-shapes", {"device": device, "threads": 1})
    sampler = sampler_for(backbone, caption.text, seed=seed)
    kept = np.zeros((frames, 32, 32, 3), dtype=np.uint8)
    began = time.perf_counter()
    for index, frame in enumerate(sampler.frames(frames)):
        kept[index] = world_frames([frame])[0]
        if save and (index + 1) % 1000 == 0:  # a run stopped half-way still leaves its frames
            np.savez_compressed(save, frames=kept[: index + 1], prompt=caption.text, seed=seed, command=command)
            print(f"  {index + 1} frames, {time.perf_counter() - began:.0f} s", flush=True)
    seconds = time.perf_counter() - began
    if save:
        np.savez_compressed(save, frames=kept, prompt=caption.text, seed=seed, seconds=seconds, command=command)
    return kept, seconds


def _cell(name: str, value: float) -> str:
    return f"{value:8.1%}" if name in FRACTIONS else f"{value:8.2f}"


def table(scores: FrameScores, window: int) -> list[str]:
    rows = scores.over_windows(window)
    lines = [f"{'frames':>13} " + " ".join(f"{name[:8]:>8}" for name in COLUMNS)]
    for row in rows:
        start = int(row["start"])
        lines.append(f"{start:>6}-{start + window - 1:<6} " + " ".join(_cell(name, row[name]) for name in COLUMNS))
    first, last = rows[0], rows[-1]

    def signed(name: str, value: float) -> str:
        return f"{value:+8.1%}" if name in FRACTIONS else f"{value:+8.2f}"

    lines.append(f"{'last-first':>13} " + " ".join(signed(name, last[name] - first[name]) for name in COLUMNS))
    if len(rows) > 2:
        # a least-squares line through the windows: a decay is a trend, not one window's dip
        starts = np.array([row["start"] for row in rows]) / 1000
        slopes = {name: float(np.polyfit(starts, [row[name] for row in rows], 1)[0]) for name in COLUMNS}
        spreads = {name: float(np.std([row[name] for row in rows], ddof=1)) for name in COLUMNS}
        lines.append(f"{'trend/1000':>13} " + " ".join(signed(name, slopes[name]) for name in COLUMNS))
        lines.append(f"{'window sd':>13} " + " ".join(_cell(name, spreads[name]) for name in COLUMNS))
    return lines


def plot(scores: FrameScores, window: int, path: str, title: str, footer: list[str]) -> None:
    from plotting import panels

    rows = scores.over_windows(window)
    xs = [row["start"] + window / 2 for row in rows]

    def series(*names: str) -> dict:
        return {name: (xs, [row[name] for row in rows]) for name in names}

    panels(path, title, footer, [
        ("fraction of frames: agreeing with the prompt, motion verdict, exact one-pixel steps, right shape",
         series("agrees", "motion", "exact_step", "shape"), (0.0, 1.05)),
        ("frame-to-frame change: mean |difference| of consecutive frames, 0..255", series("change"),
         (0.0, 1.5 * max(row["change"] for row in rows))),
        ("pixel statistics: mean and standard deviation, 0..255", series("mean", "std")),
        ("colour drift: mean distance to the nearest palette colour (0..255); shape area in pixels", series("off_palette", "area")),
    ], x_label=f"frame (centre of each window of {window})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=500, help="frames per row of the table")
    parser.add_argument("--prompt", type=int, default=0, help="index into the checker's evaluation prompts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", metavar="NPZ", help="keep the frames (32x32 uint8) in this file")
    parser.add_argument("--load", metavar="NPZ", help="score the frames of an earlier --save instead of generating")
    parser.add_argument("--plot", metavar="PNG", help="draw the windows' scores over time into this file")
    parser.add_argument("--machine", help="how the output names the machine (default: its architecture and core count)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = "python benchmarks/no_decay.py " + " ".join(argv if argv is not None else sys.argv[1:])
    origin = None
    if args.load:
        saved = np.load(args.load)
        frames, caption, seconds = saved["frames"], Caption.parse(str(saved["prompt"])), float(saved.get("seconds", float("nan")))
        seed = int(saved["seed"])
        if "command" in saved:
            origin = f"frames made by: {saved['command']}"
    else:
        caption, seed = evaluation_prompts(args.prompt + 1)[args.prompt], args.seed + args.prompt
        frames, seconds = generate(caption, args.frames, seed, args.device, args.save, command)
    if args.window > len(frames):
        sys.exit(f"a window of {args.window} frames is longer than the {len(frames)} frames; pass a smaller --window")
    machine = args.machine or (f"{os.cpu_count()}-core {platform.machine()} CPU" if args.device == "cpu" else args.device)
    machine += f", {torch.get_num_threads()} torch thread"
    print(f"fifo-shapes, {caption.text!r}, seed {seed}, {len(frames)} frames ({seconds:.0f} s to generate, "
          f"{len(frames) / seconds:.1f} frames/s, {machine}), backbone defaults")
    scores = score_frames(frames, caption)
    for line in table(scores, args.window):
        print(line)
    if args.plot:
        plot(scores, args.window, args.plot, f"fifo-shapes over {len(frames)} frames: {caption.text!r}, seed {seed}",
             [f"machine: {machine}", f"command: {command}"] + ([origin] if origin else []))
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
