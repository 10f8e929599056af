"""Seconds per output frame of FIFO sampling against the floor set by the model itself.

Prints one table: backbone, resolution, n, f, lookahead, precision, GPUs, seconds per output frame
(median over the measured frames after warm-up), the floor (one batched model call, measured in
the same run, times the model calls each frame needs: one, since every window and both guidance
halves of an iteration go in one call), the ratio to that floor, and peak memory after the short
and the long run.

    python benchmarks/fifo_speed.py --backbone gaussian-ar1 --frames 100,400          # CPU smoke
    python benchmarks/fifo_speed.py --backbone videocrafter2 -o random_weights=true \\
        -o dtype=float16 -o device=cuda --frames 100,1000
    torchrun --nproc-per-node 2 benchmarks/fifo_speed.py ...                          # windows over 2 GPUs

Real-size models with random weights are fine: the compute is the same as with trained weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from fifo_core.api import RunConfig, load_backbone, make_sampler
from fifo_core.distributed import WindowGroup


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_seconds(sampler: Any, repeats: int = 10) -> float:
    """Median time of one model call with every window and both guidance halves batched."""
    backbone, layout = sampler.backbone, sampler.layout
    rows = len(layout.windows)
    channels, height, width = sampler.noise.latent_shape
    latents = torch.randn(rows, channels, layout.window, height, width, device=backbone.device)
    timesteps = sampler.grid.timesteps[1 : layout.window + 1].float().expand(rows, -1).to(backbone.device)
    prompts = ["a benchmark prompt"] * rows
    times = []
    for _ in range(repeats + 2):
        synchronize(backbone.device)
        began = time.perf_counter()
        sampler.model.windows(latents, timesteps, prompts)
        synchronize(backbone.device)
        times.append(time.perf_counter() - began)
    return statistics.median(times[2:])


def measure(config: RunConfig, backbone: Any, lengths: list[int], skip: int, group: WindowGroup | None) -> dict[str, Any]:
    device = backbone.device
    sampler = make_sampler(config, backbone=backbone, group=group)
    floor = floor_seconds(sampler)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps, peaks = [], {}
    for count, _frame in enumerate(sampler.frames(max(lengths)), start=1):
        synchronize(device)
        stamps.append(time.perf_counter())
        if count in lengths:
            peaks[count] = peak_memory_mib(device)
    intervals = [later - earlier for earlier, later in zip(stamps[skip:], stamps[skip + 1 :])]
    per_frame = statistics.median(intervals)
    return {
        "seconds_per_frame": per_frame,
        "floor": floor,
        "ratio": per_frame / floor,
        "measured_frames": len(intervals),
        "peak_mib": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="gaussian-ar1")
    parser.add_argument("-o", "--option", action="append", default=[], help="backbone option KEY=VALUE")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--f", type=int, default=None)
    parser.add_argument("--lookahead", choices=["on", "off", "both"], default="both")
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--frames", default="100,1000", help="comma-separated run lengths for the memory figures")
    parser.add_argument("--skip", type=int, default=5, help="frames after warm-up not timed")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    group = WindowGroup.from_environment()
    options = {}
    for pair in args.option:
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    backbone = load_backbone(args.backbone, options)
    lengths = sorted(int(value) for value in args.frames.split(","))
    device = backbone.device
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    world = group.world_size if group else 1
    precision = str(getattr(backbone, "dtype", torch.float32)).removeprefix("torch.")
    rows = []
    for lookahead in {"on": [True], "off": [False], "both": [True, False]}[args.lookahead]:
        config = RunConfig(prompt="a benchmark prompt", backbone=args.backbone, partitions=args.n, window=args.f,
                           lookahead=lookahead, guidance_scale=args.guidance)
        run = config.resolve(backbone.defaults)
        result = measure(config, backbone, lengths, args.skip, group)
        rows.append({
            "backbone": args.backbone, "resolution": f"{run.height}x{run.width}", "n": run.layout.partitions,
            "f": run.layout.window, "lookahead": lookahead, "precision": precision, "gpus": f"{world} x {gpu}",
            **result,
        })
    if group is not None and not group.is_main:
        return
    header = ["backbone", "resolution", "n", "f", "lookahead", "precision", "GPUs", "s/frame", "floor s", "ratio"]
    header += [f"peak MiB @{length}" for length in lengths]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row["backbone"], row["resolution"], row["n"], row["f"], "on" if row["lookahead"] else "off",
                 row["precision"], row["gpus"], f"{row['seconds_per_frame']:.4f}", f"{row['floor']:.4f}",
                 f"{row['ratio']:.2f}"] + [f"{row['peak_mib'][length]:.0f}" for length in lengths]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
