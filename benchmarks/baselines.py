"""FIFO-Diffusion against other long-video strategies with the same model (paper Fig. 7, Table 1).

    python benchmarks/baselines.py                                  # 5 prompts x 128 frames, memory also at 32
    python benchmarks/baselines.py --prompts 2 --frames 48 --memory-frames 16   # seconds
    python benchmarks/baselines.py --only fifo independent

Every strategy runs on fifo-shapes with its defaults (f = 8, S = n f = 16 levels, DDIM eta 0), on
the same prompts (the checker's evaluation prompts) and seeds (seed + prompt index), and starts
from the same noise (latent j from draw ("frame", j)). Strategies (fifo_core.baselines):

* fifo: FIFO-Diffusion, the backbone's defaults (n = 2, lookahead);
* independent: ordinary clips of f frames joined end to end;
* autoregressive: chunks of f frames, each continuing the previous chunk's last f/2 frames by
  inpainting (known frames replaced by their clean values noised to each step's level);
* freenoise: the whole video at once, noise rescheduling and window fusion (stride f/4).

Columns, over all frames of all prompts: prompt agreement and its motion part (fifo_shapes.checker);
the mean frame-to-frame change (0..255, at the world's 32x32 pixels) across the strategy's seams
(independent: every f frames; autoregressive: where each chunk's new frames begin; freenoise:
where each block of rescheduled noise begins; fifo has no seams, so every f-th frame is used as a
control) and elsewhere, and their ratio; jumps: the percentage of consecutive frame pairs whose
change is more than 3 times the video's median change, wherever they fall; the peak latent memory the strategy held at
--memory-frames and at --frames frames (first prompt; the model and its activations, the same for
all, are not counted); and seconds per frame (generation and decoding, all prompts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from fifo_core.api import load_backbone
from fifo_core.baselines import STRATEGIES, make_strategy
from fifo_core.config import RunConfig
from fifo_core.video_metrics import boundary_discontinuity, frame_changes, jumps
from fifo_shapes.agreement import sampler_for
from fifo_shapes.checker import Agreement, check_frames, evaluation_prompts, observe
from fifo_shapes.video_scores import world_frames
from fifo_shapes.world import Caption

NAMES = ("fifo", *STRATEGIES)


@dataclass
class Outcome:
    """One strategy's results over all prompts."""

    agreement: Agreement = field(default_factory=Agreement)
    seam_changes: list[float] = field(default_factory=list)
    other_changes: list[float] = field(default_factory=list)
    peak_bytes: dict[int, int] = field(default_factory=dict)
    jumps: int = 0
    seconds: float = 0.0
    frames: int = 0


def video(name: str, backbone, caption: Caption, seed: int, frames: int) -> tuple[np.ndarray, list[int], int]:
    """World pixels ``'k 32 32 3'`` of one video, its seams and the peak latent bytes held."""
    if name == "fifo":
        sampler = sampler_for(backbone, caption.text, seed=seed)
        pixels = world_frames(sampler.frames(frames))
        layout = sampler.layout
        latent = torch.empty(backbone.latent_shape(sampler.settings.height, sampler.settings.width))
        # FIFO holds its queue: context + S latents (docs/architecture.md, Memory)
        return pixels, list(range(layout.window, frames, layout.window)), layout.length * latent.numel() * latent.element_size()
    strategy = make_strategy(name, RunConfig(prompt=caption.text, backbone="fifo-shapes", seed=seed), backbone=backbone)
    pixels = world_frames(strategy.frames(frames))
    return pixels, strategy.boundaries(frames), strategy.peak_bytes


def measure(name: str, backbone, captions: list[Caption], frames: int, memory_frames: int, seed: int) -> Outcome:
    outcome = Outcome()
    for index, caption in enumerate(captions):
        began = time.perf_counter()
        pixels, seams, peak = video(name, backbone, caption, seed + index, frames)
        outcome.seconds += time.perf_counter() - began
        outcome.frames += len(pixels)
        outcome.agreement.add(check_frames([observe(frame) for frame in pixels], caption))
        changes = frame_changes(pixels)
        outcome.jumps += jumps(changes)
        mask = np.zeros(len(changes), dtype=bool)
        mask[[seam - 1 for seam in seams]] = True
        outcome.seam_changes += changes[mask].tolist()
        outcome.other_changes += changes[~mask].tolist()
        if index == 0:
            outcome.peak_bytes[frames] = peak
    if memory_frames:
        outcome.peak_bytes[memory_frames] = video(name, backbone, captions[0], seed, memory_frames)[2]
    return outcome


def row(name: str, outcome: Outcome, lengths: list[int]) -> str:
    discontinuity = boundary_discontinuity(
        np.array(outcome.seam_changes + outcome.other_changes), range(1, len(outcome.seam_changes) + 1)
    )
    memory = " ".join(f"{outcome.peak_bytes[length] / 1024:9.0f}" for length in lengths)
    return (
        f"{name:<15}{outcome.agreement.fraction():7.1%} {outcome.agreement.fraction('motion'):7.1%} "
        f"{discontinuity.at_boundaries:7.2f} {discontinuity.elsewhere:7.2f} {discontinuity.ratio:6.2f} "
        f"{100 * outcome.jumps / max(outcome.frames - 1, 1):6.1f} {memory} "
        f"{outcome.seconds / outcome.frames:8.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--memory-frames", type=int, default=32, help="a second, shorter length for the memory columns (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run these strategies only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="how the machine is named in the output")
    args = parser.parse_args(argv)
    if args.memory_frames and args.memory_frames >= args.frames:
        sys.exit("--memory-frames must be shorter than --frames (or 0)")
    backbone = load_backbone("fifo-shapes", {"device": args.device, "threads": 1})
    torch.set_num_threads(1)
    captions = evaluation_prompts(args.prompts)
    lengths = sorted(length for length in (args.memory_frames, args.frames) if length)
    print(f"fifo-shapes, {args.prompts} prompts x {args.frames} frames, seeds {args.seed}..{args.seed + args.prompts - 1}, "
          f"{args.machine}, {torch.get_num_threads()} torch thread, device {args.device}")
    memory = " ".join(f"{'KB@' + str(length):>9}" for length in lengths)
    print(f"{'strategy':<15}{'agree':>7} {'motion':>7} {'seam':>7} {'other':>7} {'ratio':>6} {'jumps%':>6} {memory} {'s/frame':>8}")
    for name in args.only or NAMES:
        outcome = measure(name, backbone, captions, args.frames, args.memory_frames, args.seed)
        print(row(name, outcome, lengths), flush=True)


if __name__ == "__main__":
    main()
