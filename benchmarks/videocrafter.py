"""VideoCrafter2 with FIFO: seconds per output frame and peak memory, with and without lookahead.

The full-size model (1.41 B-parameter U-Net, VAE, OpenCLIP ViT-H-14 text tower) with random
weights -- the compute is that of the trained model -- at 320x512, n = 4, f = 16, DDIM, guidance
12 (both halves batched), on one CUDA GPU in float16. For each lookahead setting one run is timed
frame by frame after the queue's warm-up; peak memory is read after 100 and after 400 frames
(it should not grow: the queue is all FIFO keeps).

    python benchmarks/videocrafter.py                       # CUDA, float16, 100 and 400 frames
    python benchmarks/videocrafter.py --frames 50,200 --lookahead on
    python benchmarks/videocrafter.py --tiny                # CPU smoke run of a tiny model
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

import fifo_videocrafter.plugin
from fifo_core.api import RunConfig, load_backbone, make_sampler
from fifo_core.plugins import Plugins
from fifo_speed import peak_memory_mib, synchronize  # this folder is on sys.path when run as a script
from fifo_videocrafter.config import TINY_VIDEOCRAFTER2

# Registered directly, so the benchmark runs from a source checkout without installed entry points.
PLUGINS = Plugins(load_entry_points=False)
PLUGINS.register(fifo_videocrafter.plugin)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(backbone: Any, config: RunConfig, lengths: list[int]) -> dict[str, Any]:
    """Time each output frame; the first ``max(1, len/10)`` frames after warm-up are not timed."""
    device = backbone.device
    sampler = make_sampler(config, backbone=backbone, plugins=PLUGINS)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    stamps, peaks = [], {}
    for count, _frame in enumerate(sampler.frames(max(lengths)), start=1):
        synchronize(device)
        stamps.append(time.perf_counter())
        if count in lengths:
            peaks[count] = round(peak_memory_mib(device))
    skip = max(1, len(stamps) // 10)
    intervals = [later - earlier for earlier, later in zip(stamps[skip:], stamps[skip + 1 :])]
    return {
        "lookahead": config.lookahead,
        "seconds_per_frame": round(statistics.median(intervals), 4),
        "first_frame_seconds": round(stamps[0] - began, 2),
        "compile_seconds": round(backbone.denoiser.compile_seconds, 1),  # so far in this process, in the first frame's time
        "timed_frames": len(intervals),
        "peak_mib": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random model on the CPU (smoke test)")
    parser.add_argument("--frames", default=None, help="comma-separated lengths (default 100,400; --tiny 6,12)")
    parser.add_argument("--lookahead", choices=["on", "off", "both"], default="both")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--f", type=int, default=None, help="window (default 16; --tiny 4)")
    parser.add_argument("--dtype", default=None, help="default float16 on CUDA, float32 on CPU")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    if args.tiny:
        options = {"random_weights": True, "device": "cpu", "architecture": TINY_VIDEOCRAFTER2.model_dump()}
        size, window, default_frames = (16, 16), args.f or 4, "6,12"
    else:
        if not torch.cuda.is_available():
            parser.error("the full-size benchmark needs a CUDA GPU; use --tiny for a CPU smoke run")
        options = {"random_weights": True, "device": "cuda"}
        size, window, default_frames = (320, 512), args.f or 16, "100,400"
    if args.dtype:
        options["dtype"] = args.dtype
    lengths = sorted(int(length) for length in (args.frames or default_frames).split(","))

    loading = time.perf_counter()
    backbone = load_backbone("videocrafter2", options, plugins=PLUGINS)
    synchronize(backbone.device)
    loaded = time.perf_counter() - loading
    parameters = sum(p.numel() for p in backbone.unet.parameters())
    print(
        f"videocrafter2 random weights on {device_name(backbone.device)}, {str(backbone.dtype).removeprefix('torch.')}; "
        f"U-Net {parameters / 1e6:.0f} M parameters; built in {loaded:.1f} s; "
        f"model memory {peak_memory_mib(backbone.device):.0f} MiB"
    )
    rows = []
    for lookahead in {"on": [True], "off": [False], "both": [False, True]}[args.lookahead]:
        config = RunConfig(
            prompt="a red panda eating bamboo in a forest, 4k", backbone="videocrafter2", height=size[0], width=size[1],
            window=window, partitions=args.n, lookahead=lookahead, frames=max(lengths), seed=0,
        )
        row = run(backbone, config, lengths)
        rows.append(row)
        peaks = ", ".join(f"{peak} MiB after {count} frames" for count, peak in row["peak_mib"].items())
        print(
            f"{size[0]}x{size[1]} n={args.n} f={window} lookahead={'on ' if lookahead else 'off'}: "
            f"{row['seconds_per_frame']:.3f} s/frame (median of {row['timed_frames']}), "
            f"first frame after {row['first_frame_seconds']:.1f} s (compile {row['compile_seconds']:.1f} s, {backbone.denoiser.mode}); peak {peaks}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device_name(backbone.device), "dtype": str(backbone.dtype), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
