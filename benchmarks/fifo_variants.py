"""Does FIFO matter for the default model? Prompt agreement of the same prompts and seeds under the
paper's variants: diagonal denoising alone (n = 1), latent partitioning (n = 2, 4), each with and
without lookahead denoising.

    python benchmarks/fifo_variants.py                          # 20 prompts x 100 frames, 2 threads
    python benchmarks/fifo_variants.py --device cuda --frames 200
    python benchmarks/fifo_variants.py --only 2:on              # one variant (n:lookahead)

Every variant uses the backbone's other defaults (window f, sampler, guidance, queue start); the
table has one row per variant with the checker's fractions (fifo_shapes.checker).
"""

from __future__ import annotations

import argparse
import time

import torch

from fifo_core.api import load_backbone
from fifo_shapes.agreement import measure_agreement

VARIANTS = ((1, False), (1, True), (2, False), (2, True), (4, False), (4, True))


def parse_variant(text: str) -> tuple[int, bool]:
    partitions, _, lookahead = text.partition(":")
    if lookahead not in ("on", "off") or not partitions.isdigit():
        raise argparse.ArgumentTypeError(f"a variant is N:on or N:off (partitions and lookahead), got {text!r}")
    return int(partitions), lookahead == "on"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", help="fifo-shapes weights folder (the shipped weights when unset)")
    parser.add_argument("--only", type=parse_variant, nargs="+", metavar="N:on|off", help="run these variants only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"device": args.device} | ({"weights": args.weights} if args.weights else {})
    backbone = load_backbone("fifo-shapes", options)
    print(f"fifo-shapes, {args.prompts} prompts x {args.frames} frames, seed {args.seed}, device {args.device}")
    print(f"{'n':>2} {'lookahead':>9} {'agree':>7} {'colour':>7} {'shape':>7} {'motion':>7} {'backgr.':>7} {'seconds':>8}")
    for partitions, lookahead in args.only or VARIANTS:
        began = time.perf_counter()
        agreement = measure_agreement(backbone, args.prompts, args.frames, seed=args.seed, partitions=partitions, lookahead=lookahead)
        fractions = " ".join(f"{agreement.fraction(aspect):7.1%}" for aspect in ("agrees", "colour", "shape", "motion", "background"))
        print(f"{partitions:>2} {'on' if lookahead else 'off':>9} {fractions} {time.perf_counter() - began:8.0f}", flush=True)


if __name__ == "__main__":
    main()
