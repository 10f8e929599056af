"""Does the default model stream in real time? Output frames per second of FIFO sampling with the
backbone's default settings (lookahead on), decoding included, on this machine's CPU.

    python benchmarks/realtime.py                      # fifo-shapes, 1 thread (its default), 200 timed frames
    python benchmarks/realtime.py --threads 2 --frames 400 --backbone fifo-shapes

Prints the rate and whether it reaches the backbone's own frame rate (8 frames/s for fifo-shapes).
"""

from __future__ import annotations

import argparse
import time

import torch

from fifo_core.api import RunConfig, load_backbone, make_sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="fifo-shapes")
    parser.add_argument("--prompt", default="a red circle moving left on a blue background")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fifo-shapes' default is 1; the target is two cores)")
    parser.add_argument("--frames", type=int, default=200, help="frames timed after the warm-up")
    parser.add_argument("--warmup", type=int, default=10, help="frames made before timing starts")
    parser.add_argument("--guidance", type=float, help="guidance scale (the backbone's default when unset)")
    args = parser.parse_args()
    backbone = load_backbone(args.backbone)
    torch.set_num_threads(args.threads)  # after loading: a backbone may set its own default
    config = RunConfig(prompt=args.prompt, backbone=args.backbone, guidance_scale=args.guidance)
    run = config.resolve(backbone.defaults)
    frames = make_sampler(config, backbone=backbone).frames()
    for _ in range(args.warmup):
        next(frames)
    began = time.perf_counter()
    for _ in range(args.frames):
        next(frames)
    rate = args.frames / (time.perf_counter() - began)
    verdict = "real time" if rate >= run.fps else "slower than real time"
    print(
        f"{args.backbone}: {rate:.1f} frames/s on {args.threads} CPU threads "
        f"(n={run.layout.partitions}, f={run.layout.window}, lookahead={'on' if run.layout.lookahead else 'off'}, "
        f"guidance={run.guidance_scale:g}, {run.width}x{run.height}); its frame rate is {run.fps:g}: {verdict}"
    )


if __name__ == "__main__":
    main()
