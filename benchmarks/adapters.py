"""Seconds per output frame and peak memory of FIFO sampling with each GPU backbone family.

Each model is built at its real size (configs written out in :mod:`fifo_diffusers.random_models`,
nothing downloaded) with random weights -- the compute is the same as with trained weights -- and
a random prompt encoder (the text encoder runs once per prompt, not per frame). Prints one table:
family, resolution, f, n, lookahead, queue start, precision, compile mode, frames (at least
``--frames``: a decoder's last chunk is never cut), seconds per output frame in steady state (over
whole bursts after the first: decoders that hand out several frames at once are timed per burst),
over how many frames, seconds to the first frame (warm-up and compile included), the compile's
share of it, peak memory, and the share of the steady state spent denoising (the iterations; the rest is decoding and handing out frames); and the GPU's name.

    python benchmarks/adapters.py                                  # CUDA, real sizes, 100 and 400 frames
    python benchmarks/adapters.py --families videocrafter2 --compile off,cuda-graphs --lookahead both --start ramp --frames 40
    python benchmarks/adapters.py --families wan2.1-t2v-1.3b --frames 100 --dtype bfloat16
    python benchmarks/adapters.py --tiny --device cpu --frames 3,6 # smoke test of this script
    python benchmarks/adapters.py --families opensora-plan-v1.1 --frames 100 --lookahead both  # 65x512x512, n=8
    python benchmarks/adapters.py --families wan2.1-t2v-1.3b --start continue --frames 21 --compile off,cuda-graphs --lookahead both

``--start continue`` starts the queue as ``--init-video`` does (every slot on the diagonal, the
clip's last latents as the lookahead context), from random latents in place of an encoded clip:
the first iteration is already a steady-state one, so the steady state, its peak memory and the
compile are measured without the warm-up of a pure-noise or clip start (minutes for the largest
models; ``benchmarks/warm_up_cost.py`` counts what each start's warm-up costs in iterations).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import torch

from fifo_core.api import RunConfig, make_sampler
from fifo_core.backbone import Backbone
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.decoding import frame_stream
from fifo_diffusers import random_models
from fifo_diffusers.common import RandomPromptEncoder, random_fill_
from fifo_diffusers.defaults import (
    ANIMATEDIFF_DEFAULTS,
    LATTE_DEFAULTS,
    LTX_DEFAULTS,
    MODELSCOPE_DEFAULTS,
    WAN_1_3B_DEFAULTS,
    WAN_14B_DEFAULTS,
    ZEROSCOPE_DEFAULTS,
)

FAMILIES = (
    "zeroscope-v2-576w", "animatediff-v1-5", "wan2.1-t2v-1.3b", "modelscope-t2v", "wan2.1-t2v-14b", "latte-1", "ltx-video",
    "opensora-plan-v1.1", "videocrafter2",
)
# each family's own precision on CUDA (its adapter's ``dtype=auto``)
CUDA_DTYPES = {"wan2.1-t2v-1.3b": torch.bfloat16, "wan2.1-t2v-14b": torch.bfloat16, "ltx-video": torch.bfloat16}
DEFAULT_FAMILIES = FAMILIES[:3]


DENOISER_OPTIONS = {"fp8": "fp8", "channels-last": "channels_last"}


def denoiser_variant(token: str) -> tuple[str, dict[str, bool]]:
    """A ``--compile`` entry as (compile mode, denoiser options): ``cuda-graphs+channels-last+fp8``
    is the mode ``cuda-graphs`` with ``channels_last`` and ``fp8`` on."""
    mode, *options = token.split("+")
    unknown = [option for option in options if option not in DENOISER_OPTIONS]
    if unknown:
        raise SystemExit(f"unknown denoiser option {unknown[0]!r} in {token!r}; known: {', '.join(DENOISER_OPTIONS)}")
    return mode, {DENOISER_OPTIONS[option]: True for option in options}


def variant_denoiser(module: torch.nn.Module, token: str, device: torch.device, shim: Any = None) -> CompiledDenoiser:
    """The denoiser for a ``--compile`` entry. Options change the module in place (fp8 swaps its
    linear layers), so a variant with options gets a copy and ``module`` stays eager's."""
    mode, options = denoiser_variant(token)
    if options:
        module = copy.deepcopy(module, memo={id(shim): shim} if shim is not None else None)
    return CompiledDenoiser(module, mode, device, **options)


def build(family: str, tiny: bool, device: torch.device, dtype: torch.dtype | None = None, compile: CompileMode = "off") -> Backbone:
    """A random-weight backbone of ``family`` at its real size (or tiny), its denoiser compiled as
    ``compile`` says; ``dtype`` None: the family's own on CUDA, float32 on the CPU."""
    if dtype is None:
        dtype = CUDA_DTYPES.get(family, torch.float16) if device.type == "cuda" else torch.float32
    backbone = _build_eager(family, tiny, device, dtype)
    backbone.denoiser = CompiledDenoiser(backbone.denoiser.module, compile, device)
    return backbone


def _build_eager(family: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> Backbone:
    from fifo_diffusers.animatediff import AnimateDiffBackbone
    from fifo_diffusers.unet3d import UNet3DBackbone
    from fifo_diffusers.wan import WanBackbone

    size = "tiny" if tiny else "real"
    if family == "videocrafter2":
        return build_videocrafter2(tiny, device, dtype)
    if family in ("zeroscope-v2-576w", "modelscope-t2v", "animatediff-v1-5"):
        if family == "animatediff-v1-5":
            import diffusers

            parts = random_models.animatediff_components(size)
            unet = diffusers.UNetMotionModel.from_unet2d(parts["unet"], parts["motion_adapter"])
            backbone_class, defaults = AnimateDiffBackbone, ANIMATEDIFF_DEFAULTS
        else:
            parts = random_models.unet3d_components(size)
            unet = parts["unet"]
            defaults = ZEROSCOPE_DEFAULTS if family.startswith("zeroscope") else MODELSCOPE_DEFAULTS
            backbone_class = UNet3DBackbone
        states = RandomPromptEncoder(77, unet.config.cross_attention_dim, device, dtype)
        return backbone_class(
            unet=unet, vae=parts["vae"], prompt_encoder=states,
            schedule=random_models_schedule(parts["scheduler"]), defaults=defaults, device=device, dtype=dtype,
        )
    if family.startswith("wan"):
        variant = "14b" if family.endswith("14b") else "1.3b"
        parts = random_models.wan_components(size, variant=variant)
        transformer = parts["transformer"]
        return WanBackbone(
            transformer=transformer, vae=parts["vae"],
            prompt_encoder=RandomPromptEncoder(512 if not tiny else 16, transformer.config.text_dim, device, dtype),
            schedule=random_models_schedule(parts["scheduler"]),
            defaults=WAN_14B_DEFAULTS if variant == "14b" else WAN_1_3B_DEFAULTS, device=device, dtype=dtype,
        )
    if family == "latte-1":
        from fifo_diffusers.latte import LatteBackbone

        parts = random_models.latte_components(size)
        transformer = parts["transformer"]
        return LatteBackbone(
            transformer=transformer, vae=parts["vae"],
            prompt_encoder=RandomPromptEncoder(120 if not tiny else 16, transformer.config.caption_channels, device, dtype),
            schedule=random_models_schedule(parts["scheduler"]), defaults=LATTE_DEFAULTS, device=device, dtype=dtype,
        )
    if family == "ltx-video":
        from fifo_diffusers.ltx import LTXBackbone

        parts = random_models.ltx_components(size)
        transformer, width = parts["transformer"], parts["transformer"].config.caption_channels
        encoder = RandomPromptEncoder(128 if not tiny else 16, width, device, dtype)
        return LTXBackbone(
            transformer=transformer, vae=parts["vae"],
            prompt_encoder=lambda prompt: (encoder(prompt), torch.ones(1, encoder.length, dtype=torch.bool, device=device)),
            schedule=random_models_schedule(parts["scheduler"], shift=3.0), defaults=LTX_DEFAULTS, device=device, dtype=dtype,
        )
    if family == "opensora-plan-v1.1":
        return build_opensora_plan(tiny, device, dtype)
    raise SystemExit(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def build_videocrafter2(tiny: bool, device: torch.device, dtype: torch.dtype) -> Backbone:
    """VideoCrafter2 (1.41 B U-Net, SD VAE, OpenCLIP ViT-H-14 text tower) with random weights."""
    from fifo_videocrafter.backbone import VideoCrafterBackbone
    from fifo_videocrafter.config import TINY_VIDEOCRAFTER2

    architecture = TINY_VIDEOCRAFTER2.model_dump() if tiny else None
    return VideoCrafterBackbone(
        "videocrafter2", random_weights=True, device=str(device), dtype=str(dtype).removeprefix("torch."), architecture=architecture, compile="off"
    )


def build_opensora_plan(tiny: bool, device: torch.device, dtype: torch.dtype) -> Backbone:
    """Open-Sora Plan v1.1 65x512x512 at its released size (1.06 B transformer, CausalVAE), random weights."""
    import diffusers

    from fifo_opensora import causal_vae, transformer
    from fifo_opensora.backbone import EncodedPrompt, OpenSoraPlanBackbone
    from fifo_opensora.defaults import OPENSORA_65_DEFAULTS

    released = transformer.tiny_released_config() if tiny else transformer.released_config("65x512x512")
    model = diffusers.LatteTransformer3DModel(**transformer.diffusers_latte_config(released, video_length=17))
    vae = causal_vae.CausalVAE.from_config(causal_vae.tiny_config() if tiny else causal_vae.released_config())
    # A typical prompt is well under the 300-token limit; the states are cut to its length.
    states = RandomPromptEncoder(120, released["caption_channels"], device, dtype)
    return OpenSoraPlanBackbone(
        transformer=random_fill_(model, 0), vae=random_fill_(vae, 1),
        prompt_encoder=lambda prompt: EncodedPrompt(states(prompt), states.length),
        defaults=OPENSORA_65_DEFAULTS, device=device, dtype=dtype, vae_dtype=dtype,
    )


def random_models_schedule(scheduler: Any, shift: float | None = None):
    from fifo_diffusers.common import schedule_from_scheduler

    return schedule_from_scheduler(scheduler, shift)


def tiny_settings(family: str) -> dict[str, Any]:
    if family.startswith("opensora"):  # the window is the temporal position table: 17 latent frames
        return {"height": 32, "width": 32, "window": 17, "partitions": 1}
    size = 64 if family.startswith(("wan", "ltx")) else 16
    return {"height": size, "width": size, "window": 4, "partitions": 1}


def release(device: torch.device) -> None:
    """Drop compiled graphs and cached GPU memory between families."""
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def write_rows(path: str | None, device_name: str, rows: list[dict[str, Any]]) -> None:
    """The table's rows as JSON, with the device and torch version, when ``path`` is given
    (written after every row, so a run cut short keeps what it measured)."""
    if path:
        with open(path, "w") as handle:
            json.dump({"device": device_name, "torch": torch.__version__, "rows": rows}, handle, indent=2)


def bursts(stamps: list[float], gap: float = 2e-3) -> list[int]:
    """Indices of the last frame of each burst: frames handed out within ``gap`` seconds of the
    one before belong to the same burst (chunked decoders hand out several frames at once)."""
    ends = [index - 1 for index in range(1, len(stamps)) if stamps[index] - stamps[index - 1] > gap]
    return ends + [len(stamps) - 1] if stamps else []


def steady_span(stamps: list[float]) -> tuple[float, float, int]:
    """The steady state: from the end of the first burst to the end of the last (times), and the
    frames in between; (0, 0, 0) with fewer than two bursts."""
    ends = bursts(stamps)
    if len(ends) < 2:
        return 0.0, 0.0, 0
    return stamps[ends[0]], stamps[ends[-1]], ends[-1] - ends[0]


def steady_seconds_per_frame(stamps: list[float]) -> tuple[float, int]:
    """Seconds per frame over whole bursts after the first (:func:`steady_span`), and how many
    frames that covers."""
    began, ended, frames = steady_span(stamps)
    return ((ended - began) / frames, frames) if frames else (float("nan"), 0)


def measure(
    backbone: Backbone, family: str, frames: int, tiny: bool, guidance: float | None, lookahead: bool | None = None, start: str | None = None
) -> dict[str, Any]:
    """One FIFO run of ``frames`` frames: time to the first frame (the start's warm-up and every
    compile included), steady seconds per frame over whole bursts, peak memory."""
    continues = start == "continue"  # not a setting: the run continues random latents (module notes)
    config = RunConfig(
        prompt="a benchmark prompt", backbone=family, frames=frames, guidance_scale=guidance, lookahead=lookahead,
        start=None if continues else start,
        **(tiny_settings(family) if tiny else {}),
    )
    device = backbone.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    compiled_before = backbone.denoiser.compile_seconds
    iterations: list[tuple[float, float]] = []  # (end, seconds) of each iteration: its denoising, decoding aside
    began = time.perf_counter()
    sampler = make_sampler(config, backbone=backbone, on_iteration=lambda event: iterations.append((time.perf_counter(), event.seconds)))
    if continues:
        sampler.init_latents = random_clip_latents(sampler)
    stamps = whole_chunk_stamps(sampler, frames)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_frame, timed = steady_seconds_per_frame(stamps)
    span_began, span_ended, _ = steady_span(stamps)
    denoising = sum(seconds for end, seconds in iterations if span_began < end <= span_ended)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "first": stamps[0] - began, "per_frame": per_frame, "timed_frames": timed, "frames": len(stamps),
        "denoise_share": denoising / (span_ended - span_began) if span_ended > span_began else float("nan"), "peak_gib": peak, "layout": sampler.layout,
        "compile_s": backbone.denoiser.compile_seconds - compiled_before,
        "start": "continue" if continues else sampler.settings.start.kind,
    }


def whole_chunk_stamps(sampler: Any, frames: int) -> list[float]:
    """When each frame came out, decoding as :meth:`FifoSampler.frames` does, for at least
    ``frames`` frames and up to the end of the decoder call that reaches them. A decoder that
    hands out a chunk of latents at once (LTX-Video: 32 frames) must not be cut inside its last
    chunk: the chunk's time would be counted over only the frames let through (once measured as
    four times LTX-Video's true seconds per frame)."""
    stamps: list[float] = []
    with frame_stream(sampler.backbone, sampler.settings.overlap_decode) as decoder:
        for clean in sampler.latents():
            stamps += [time.perf_counter()] * len(decoder.decode(clean.latent))
            if len(stamps) >= frames:
                return stamps
    return stamps


def random_clip_latents(sampler: Any) -> torch.Tensor:
    """Seeded random latents ``'t c h w'`` shaped as the clip ``--init-video`` would encode."""
    generator = torch.Generator().manual_seed(0)
    frames = max(sampler.layout.context, 1)
    return torch.randn(frames, *sampler.noise.latent_shape, generator=generator).to(sampler.backbone.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES), help=f"comma-separated; known: {', '.join(FAMILIES)}")
    parser.add_argument("--frames", default="100,400", help="video lengths to time, comma-separated")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"], help="default: the family's own on CUDA")
    parser.add_argument(
        "--compile", default="off",
        help="compile modes of the denoiser, comma-separated: off, on, cuda-graphs, max-autotune, each with +fp8 and +channels-last if wanted",
    )
    parser.add_argument("--guidance", type=float, default=None, help="override the models' guidance (1 disables CFG)")
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU smoke test of this script)")
    parser.add_argument("--lookahead", default="default", choices=["default", "on", "off", "both"], help="lookahead denoising")
    parser.add_argument("--start", default="default", choices=["default", "ramp", "clip", "both", "continue"],
                        help="queue start; continue: from random latents as --init-video starts (no warm-up, see above)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; run with --tiny --device cpu for a smoke test")
    lengths = [int(n) for n in args.frames.split(",")]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {gpu}; torch {torch.__version__}; {'tiny' if args.tiny else 'real-size'} random-weight models")
    header = (
        f"{'backbone':<20} {'size':>9} {'f':>3} {'n':>2} {'LA':>3} {'start':>5} {'dtype':>8} {'compile':>24} {'frames':>6} "
        f"{'s/frame':>8} {'over':>5} {'first s':>8} {'compile s':>9} {'peak GiB':>8} {'denoise':>7}"
    )
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    lookaheads = {"default": [None], "on": [True], "off": [False], "both": [False, True]}[args.lookahead]
    starts = {"default": [None], "ramp": ["ramp"], "clip": ["clip"], "both": ["ramp", "clip"], "continue": ["continue"]}[args.start]
    for family in (name.strip() for name in args.families.split(",")):
        with torch.inference_mode():
            built = time.perf_counter()
            backbone = build(family, args.tiny, device, getattr(torch, args.dtype) if args.dtype else None)
            print(f"{family}: built in {time.perf_counter() - built:.1f} s", flush=True)
            module = backbone.denoiser.module
            for mode in args.compile.split(","):
                backbone.denoiser = variant_denoiser(module, mode, device, getattr(backbone, "shim", None))
                for lookahead, start, frames in [(la, st, n) for la in lookaheads for st in starts for n in lengths]:
                    result = measure(backbone, family, frames, args.tiny, args.guidance, lookahead, start)
                    layout = result["layout"]
                    settings = tiny_settings(family) if args.tiny else backbone.defaults.model_dump()
                    row = {
                        "family": family, "width": settings["width"], "height": settings["height"], "window": layout.window,
                        "partitions": layout.partitions, "lookahead": layout.lookahead, "start": result["start"],
                        "dtype": str(backbone.dtype).removeprefix("torch."), "compile": mode, "frames": result["frames"],
                        "seconds_per_frame": round(result["per_frame"], 4), "timed_frames": result["timed_frames"],
                        "first_frame_s": round(result["first"], 1), "compile_s": round(result["compile_s"], 1), "peak_gib": round(result["peak_gib"], 2),
                        "denoise_share": round(result["denoise_share"], 3),
                    }
                    rows.append(row)
                    write_rows(args.json, gpu, rows)
                    print(
                        f"{family:<20} {row['width']:>4}x{row['height']:<4} {layout.window:>3} {layout.partitions:>2} "
                        f"{'on' if layout.lookahead else 'off':>3} {row['start']:>5} {row['dtype']:>8} {mode:>24} {row['frames']:>6} "
                        f"{row['seconds_per_frame']:>8.3f} {row['timed_frames']:>5} {row['first_frame_s']:>8.1f} {row['compile_s']:>9.1f} "
                        f"{row['peak_gib']:>8.2f} {row['denoise_share']:>7.0%}",
                        flush=True,
                    )
        del backbone, module
        release(device)


if __name__ == "__main__":
    main()
