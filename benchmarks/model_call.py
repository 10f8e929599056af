"""One FIFO iteration's model call per backbone family, eager against compiled: the floor of a
frame's time, and where it goes.

For each family (real size, random weights: the compute is that of the trained model) and each
lookahead setting, every window of an iteration and both guidance halves go in one batched call,
as FIFO makes it in steady state. Each compile mode is timed on the same inputs: the first call
(compile and CUDA-graph recording included), then the median of ``--repeats`` calls, and the
output's relative error against eager (max |compiled - eager| / max |eager| over the whole tensor).
Seconds per frame are the call's time over the video frames one latent decodes to.

Low precision has its own error: with ``--float32-reference`` the same weights in float32 (a copy
of the denoiser, eager) give a reference output, and each mode's error against it is printed
beside eager's: compiling stays within the precision's own error when the two are alike.

    python benchmarks/model_call.py --families videocrafter2 --compile off,on,cuda-graphs --profile prof.txt
    python benchmarks/model_call.py --tiny --device cpu --families zeroscope-v2-576w --compile off,on   # CPU smoke test
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

import torch

from adapters import FAMILIES, build, release, tiny_settings, variant_denoiser, write_rows  # this folder is on sys.path when run as a script
from fifo_core.api import RunConfig, make_sampler
from fifo_core.compiled import CompiledDenoiser
from fifo_speed import synchronize


class Float32Copy:
    """A float32 copy of ``module`` called in place of the denoiser: floating inputs go in as
    float32. The copy shares the backbone's timestep shim (its hooks are the original's)."""

    def __init__(self, module: torch.nn.Module, shared: Any) -> None:
        self.module = copy.deepcopy(module, memo={id(shared): shared} if shared is not None else None).float()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        def cast(value: Any) -> Any:
            return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

        return self.module(*(cast(value) for value in args), **{key: cast(value) for key, value in kwargs.items()})


def window_inputs(sampler: Any) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Latents and timesteps of every window of a steady-state iteration (seeded)."""
    layout, device = sampler.layout, sampler.backbone.device
    rows = len(layout.windows)
    channels, height, width = sampler.noise.latent_shape
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(rows, channels, layout.window, height, width, generator=generator).to(device)
    levels = torch.stack([torch.arange(w.read_start, w.read_stop) - layout.context + 1 for w in layout.windows]).clamp(0, layout.num_levels)
    timesteps = sampler.grid.timesteps[levels].float().to(device)
    return latents, timesteps, ["a benchmark prompt"] * rows


def time_calls(sampler: Any, inputs: tuple, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(first call s, median call s, output of the first call)."""
    device = sampler.backbone.device
    times, first_output = [], None
    for _ in range(repeats + 1):
        synchronize(device)
        began = time.perf_counter()
        output = sampler.model.windows(*inputs)
        synchronize(device)
        times.append(time.perf_counter() - began)
        if first_output is None:
            first_output = output.float().cpu()
    return times[0], statistics.median(times[1:] or times), first_output


def profile_call(sampler: Any, inputs: tuple, title: str, handle: Any) -> None:
    """The CUDA kernels of one call, by total time (top 25), written to ``handle``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if sampler.backbone.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        sampler.model.windows(*inputs)
        synchronize(sampler.backbone.device)
    key = "cuda_time_total" if sampler.backbone.device.type == "cuda" else "cpu_time_total"
    handle.write(f"\n=== {title}\n{prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=70)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="videocrafter2", help=f"comma-separated; known: {', '.join(FAMILIES)}")
    parser.add_argument(
        "--compile", default="off,cuda-graphs",
        help="compile modes to time, comma-separated (off first: the reference output); each may add +fp8, +channels-last (see adapters.py)",
    )
    parser.add_argument("--lookahead", default="both", choices=["on", "off", "both"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"], help="default: the family's own on CUDA")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke test of this script)")
    parser.add_argument("--profile", help="write a kernel profile of each family's eager and last compiled call to this file")
    parser.add_argument("--float32-reference", action="store_true", help="also compare every mode with the same weights in float32")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    device = torch.device(args.device)
    modes = args.compile.split(",")
    if modes[0] != "off":
        modes.insert(0, "off")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {gpu}; torch {torch.__version__}; {'tiny' if args.tiny else 'real-size'} random-weight models")
    header = f"{'backbone':<20} {'size':>9} {'f':>3} {'n':>2} {'LA':>3} {'dtype':>8} {'rows':>4} {'compile':>24} {'first s':>8} {'call s':>8} {'s/frame':>8} {'speed-up':>8} {'rel err':>8} {'vs fp32':>8} {'peak GiB':>8}"
    print(header)
    print("-" * len(header), flush=True)
    rows, profile_handle = [], open(args.profile, "w") if args.profile else None
    for family in args.families.split(","):
        with torch.inference_mode():
            backbone = build(family, args.tiny, device, getattr(torch, args.dtype) if args.dtype else None)
            module = backbone.denoiser.module
            for lookahead in {"on": [True], "off": [False], "both": [False, True]}[args.lookahead]:
                config = RunConfig(prompt="a benchmark prompt", backbone=family, lookahead=lookahead, **(tiny_settings(family) if args.tiny else {}))
                sampler = make_sampler(config, backbone=backbone)
                inputs = window_inputs(sampler)
                reference, eager_call, float32_output = None, None, None
                if args.float32_reference:
                    backbone.denoiser = Float32Copy(module, getattr(backbone, "shim", None))
                    float32_output = time_calls(sampler, inputs, 0)[2]
                    backbone.denoiser = None  # frees the copy before the timed calls
                for mode in modes:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    backbone.denoiser = variant_denoiser(module, mode, device, getattr(backbone, "shim", None))
                    first, call, output = time_calls(sampler, inputs, args.repeats)
                    if reference is None:
                        reference, eager_call = output, call
                    error = ((output - reference).abs().max() / reference.abs().max()).item()
                    versus_float32 = float("nan") if float32_output is None else ((output - float32_output).abs().max() / float32_output.abs().max()).item()
                    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
                    layout, per_latent = sampler.layout, backbone.defaults.frames_per_latent
                    row = {
                        "family": family, "height": config.height or backbone.defaults.height, "width": config.width or backbone.defaults.width,
                        "window": layout.window, "partitions": layout.partitions, "lookahead": lookahead, "dtype": str(backbone.dtype).removeprefix("torch."),
                        "rows": sampler.model.rows(len(layout.windows)), "compile": mode, "first_call_s": round(first, 2), "call_s": round(call, 4),
                        "seconds_per_frame": round(call / per_latent, 4), "speed_up": round(eager_call / call, 3), "relative_error": error,
                        "error_vs_float32": versus_float32, "peak_gib": round(peak, 2),
                    }
                    rows.append(row)
                    write_rows(args.json, gpu, rows)
                    print(
                        f"{family:<20} {row['width']:>4}x{row['height']:<4} {layout.window:>3} {layout.partitions:>2} {'on' if lookahead else 'off':>3} "
                        f"{row['dtype']:>8} {row['rows']:>4} {mode:>24} {first:>8.1f} {call:>8.3f} {row['seconds_per_frame']:>8.3f} "
                        f"{row['speed_up']:>8.2f} {error:>8.1e} {versus_float32:>8.1e} {peak:>8.2f}",
                        flush=True,
                    )
                    if profile_handle and lookahead == (args.lookahead != "off") and mode in (modes[0], modes[-1]):
                        profile_call(sampler, inputs, f"{family} lookahead={lookahead} compile={mode} ({gpu})", profile_handle)
            backbone.denoiser = CompiledDenoiser(module, "off", device)
        del backbone, module, sampler
        release(device)


if __name__ == "__main__":
    main()
