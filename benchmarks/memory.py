"""Peak memory of FIFO sampling at two video lengths: it must not grow with the number of frames.

    python benchmarks/memory.py                   # 200 and 2,000 frames, the Gaussian backbone's defaults
    python benchmarks/memory.py --frames 100,1000 -n 2 -f 8

Three measures per length, each taken in a fresh sampler of one shared backbone after a warm-up run
(imports, the backbone's cache of denoiser matrices):
* ``traced peak``: tracemalloc's peak of Python-heap allocations during the run (it jitters by a
  kilobyte or two with the interpreter's free lists), and ``retained``: the largest traced memory
  held between iterations, which is what a leak would raise (steady to a few bytes);
* ``rss peak``: growth of the process's resident set over the run (sampled every iteration from
  /proc/self/statm), which also sees torch's tensor storage;
* ``queue``: bytes of the tensors the queue holds (latents, levels, frame ids), largest over the run.
Each length runs three times (different seeds) and the quietest is kept. The last line prints
the ratio long/short; constant memory means about 1.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import tracemalloc
from dataclasses import dataclass

import torch

from fifo_core.config import RunConfig
from fifo_core.partition import QueueLayout
from fifo_core.queue import LatentQueue
from fifo_core.sampling import FifoSampler
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ObservedSampler(FifoSampler):
    """A sampler that keeps a handle on its queue so its tensors can be measured."""

    queue: LatentQueue | None = None

    def start_queue(self) -> LatentQueue:
        self.queue = super().start_queue()
        return self.queue


def queue_bytes(queue: LatentQueue) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in (queue.latents, queue.levels, queue.frame_ids))


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE
    except OSError:  # not Linux: fall back to the peak, which only grows
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class Measurement:
    frames: int
    traced_peak: int
    traced_retained: int
    rss_growth: int
    queue_max: int
    queue_min: int


def measure(backbone: GaussianAR1Backbone, frames: int, layout: QueueLayout, side: int, start: str = "ramp", seed: int = 0) -> Measurement:
    """Run ``frames`` frames through a fresh sampler of ``backbone`` (the model, loaded once and
    shared, as in a real run) and measure; the frames are discarded. Use :func:`measure_quietly`
    to compare lengths: single peaks jitter by about a kilobyte."""
    # Running extremes, not lists: anything kept per iteration would itself grow with the length.
    seen = {"queue_max": 0, "queue_min": None, "rss_max": 0, "retained_max": 0}

    def observe(_event) -> None:
        size = queue_bytes(sampler.queue)
        seen["queue_max"] = max(seen["queue_max"], size)
        seen["queue_min"] = size if seen["queue_min"] is None else min(seen["queue_min"], size)
        seen["rss_max"] = max(seen["rss_max"], resident_bytes())
        seen["retained_max"] = max(seen["retained_max"], tracemalloc.get_traced_memory()[0])

    config = RunConfig(
        prompt="memory", window=layout.window, partitions=layout.partitions, lookahead=layout.lookahead,
        height=side, width=side, guidance_scale=1.0, seed=seed, start=start,
    )
    sampler = ObservedSampler(backbone, config.resolve(DEFAULTS), on_iteration=observe)
    # A full collection empties the interpreter's free lists; one landing mid-run (when depends on
    # everything allocated before, e.g. by pytest) shifts the traced peak by kilobytes. The loop
    # makes no reference cycles, so collect once before and keep the collector out of the run.
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    baseline = resident_bytes()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        for _ in itertools.islice(sampler.latents(), frames):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        if enabled:
            gc.enable()
    sampler.queue = None
    return Measurement(frames, peak, seen["retained_max"], seen["rss_max"] - baseline, seen["queue_max"], seen["queue_min"])


def measure_quietly(backbone: GaussianAR1Backbone, frames: int, layout: QueueLayout, side: int, start: str = "ramp", repeats: int = 3) -> Measurement:
    """The run with the smallest traced peak of ``repeats``: a transient (a dict resizing, the
    interpreter's free lists) only ever adds to a peak, while real growth raises every repeat."""
    return min((measure(backbone, frames, layout, side, start, seed) for seed in range(repeats)), key=lambda run: run.traced_peak)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="200,2000", help="two lengths, short,long")
    parser.add_argument("-n", "--partitions", type=int, default=DEFAULTS.partitions)
    parser.add_argument("-f", "--window", type=int, default=DEFAULTS.window)
    parser.add_argument("--side", type=int, default=8, help="latent height and width")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--start", choices=["ramp", "clip"], default="ramp")
    args = parser.parse_args(argv)
    short, long = (int(value) for value in args.frames.split(","))
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin
    layout = QueueLayout(args.window, args.partitions, True)
    backbone = GaussianAR1Backbone(channels=args.channels, downsample=1)
    for _ in range(2):  # warm-up: imports, the model's caches; the first traced run after it still reads ~5% high
        measure(backbone, short, layout, args.side, args.start)
    results = [measure_quietly(backbone, frames, layout, args.side, args.start) for frames in (short, long)]
    print(f"Gaussian AR(1), f={args.window} n={args.partitions} lookahead, latent {args.channels}x{args.side}x{args.side}, {args.start} start")
    print(f"{'frames':>7} {'traced peak KiB':>16} {'retained KiB':>13} {'rss growth KiB':>15} {'queue bytes':>12}")
    for result in results:
        constant = "" if result.queue_max == result.queue_min else f" (varied down to {result.queue_min})"
        print(
            f"{result.frames:>7} {result.traced_peak / 1024:16.1f} {result.traced_retained / 1024:13.1f} "
            f"{result.rss_growth / 1024:15.1f} {result.queue_max:>12}{constant}"
        )
    first, last = results
    print(
        f"ratio {last.frames}/{first.frames}: traced peak {last.traced_peak / first.traced_peak:.3f}, "
        f"retained {last.traced_retained / first.traced_retained:.3f}, "
        f"rss growth {first.rss_growth // 1024} -> {last.rss_growth // 1024} KiB (allocator pages: noise, not a trend), "
        f"queue {last.queue_max / first.queue_max:.3f}"
    )


if __name__ == "__main__":
    main()
