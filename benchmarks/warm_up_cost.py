"""What each queue start costs before the first frame, for every backbone's defaults.

FIFO's first frame waits for the queue's warm-up; its cost is fixed by the layout alone (levels
``S = n f``, windows, lookahead), not by the model. For each installed backbone and each start,
this runs the sampling loop with the Gaussian reference backbone (a model call of microseconds)
under that backbone's window, partitions and lookahead, counts the model rows of the warm-up (the
clip start's first clip included), and prints them in units of one steady-state iteration.
Multiplied by a model's measured seconds per iteration (``benchmarks/model_call.py``), that is
its time to the first frame, before decoding and compiling.

    python benchmarks/warm_up_cost.py
    python benchmarks/warm_up_cost.py --backbones wan2.1-t2v-1.3b --partitions 2,4
"""

from __future__ import annotations

import argparse

from fifo_core.api import RunConfig, load_backbone, make_sampler
from fifo_core.plugins import default_plugins

SKIPPED = ("gaussian-ar1", "fifo-shapes", "fifo-shapes-tracker")  # the CPU models warm up in under a second


def warm_up_rows(window: int, partitions: int, lookahead: bool, start: str) -> dict[str, int]:
    """Model rows until the first frame leaves the queue (two per window: guidance is on)."""
    stand_in = load_backbone("gaussian-ar1", {})
    config = RunConfig(
        prompt="a prompt", backbone="gaussian-ar1", window=window, partitions=partitions, lookahead=lookahead, start=start,
        guidance_scale=2.0, frames=1,
    )
    sampler = make_sampler(config, backbone=stand_in)
    iterations: list[int] = []
    sampler.on_iteration = lambda event: iterations.append(event.model_rows)
    clip_steps = []
    step = sampler._clip_step
    sampler._clip_step = lambda *args: clip_steps.append(1) or step(*args)
    for _ in sampler.frames(1):
        pass
    return {
        "levels": sampler.layout.num_levels, "iterations": len(iterations), "rows": sum(iterations) + 2 * len(clip_steps),
        "steady_rows": sampler.model.rows(len(sampler.layout.windows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", help="comma-separated (default: every installed backbone but the CPU ones)")
    parser.add_argument("--partitions", help="comma-separated n to try instead of each backbone's own")
    args = parser.parse_args()
    specs = default_plugins().backbones()
    names = args.backbones.split(",") if args.backbones else [name for name in sorted(specs) if name not in SKIPPED]
    header = f"{'backbone':<24} {'f':>3} {'n':>2} {'LA':>3} {'S':>4} {'start':>5} {'iterations':>10} {'rows':>6} {'steady rows':>11} {'iterations of steady work':>25}"
    print(header)
    print("-" * len(header))
    for name in names:
        defaults = specs[name].defaults
        for partitions in [int(n) for n in args.partitions.split(",")] if args.partitions else [defaults.partitions]:
            for lookahead in (False, True):
                for start in ("ramp", "clip"):
                    cost = warm_up_rows(defaults.window, partitions, lookahead, start)
                    print(
                        f"{name:<24} {defaults.window:>3} {partitions:>2} {'on' if lookahead else 'off':>3} {cost['levels']:>4} {start:>5} "
                        f"{cost['iterations']:>10} {cost['rows']:>6} {cost['steady_rows']:>11} {cost['rows'] / cost['steady_rows']:>25.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
