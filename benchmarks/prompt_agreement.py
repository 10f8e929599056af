"""Does the default model follow its prompt? Generate FIFO videos for prompts of the shapes
grammar and report the fraction of frames the checker (fifo_shapes.checker) finds agreeing.

    python benchmarks/prompt_agreement.py                      # 20 prompts x 500 frames, target 90%
    python benchmarks/prompt_agreement.py --prompts 4 --frames 100 --guidance 3

Exits with status 1 when the agreement is below --target.
"""

from __future__ import annotations

import argparse
import sys

import torch

from fifo_core.api import load_backbone
from fifo_shapes.agreement import measure_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="fifo-shapes")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, help="guidance scale (the backbone's default when unset)")
    parser.add_argument("--n", type=int, help="latent partitions n")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", help="fifo-shapes weights folder to check (the shipped weights when unset)")
    parser.add_argument("--device", default="cpu", help="torch device of the backbone")
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {key: value for key, value in (("guidance_scale", args.guidance), ("partitions", args.n)) if value is not None}
    backbone = load_backbone(args.backbone, {"device": args.device} | ({"weights": args.weights} if args.weights else {}))

    def report(caption, agreement) -> None:
        print(f"{caption.text!r}: {agreement.describe()}", flush=True)

    total = measure_agreement(backbone, args.prompts, args.frames, seed=args.seed, on_video=report, **settings)
    print(f"overall: {total.describe()} (target {args.target:.0%})")
    sys.exit(0 if total.fraction() >= args.target else 1)


if __name__ == "__main__":
    main()
