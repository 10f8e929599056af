"""How far decoding dequeued latents in small clips at the queue head is from decoding the whole
video at once, for Open-Sora Plan's CausalVAE (its GroupNorm spans every frame of a clip).

A synthetic video (coloured shapes drifting over a gradient) is encoded to latents; those latents are
decoded whole and through the backbone's chunked decoder for several ``decode_context`` /
``decode_chunk`` settings. Prints the mean absolute difference in 8-bit levels and the PSNR of the
chunked frames against the whole-clip frames, and the machine.

    python benchmarks/chunked_decode.py                          # tiny random-weight VAE (a smoke test: no learned locality)
    python benchmarks/chunked_decode.py --vae FOLDER/vae --size 256 --device cuda   # the released weights
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch

from fifo_core.backbone import to_uint8_frame
from fifo_core.decoding import ChunkedClipDecoder
from fifo_diffusers.common import random_fill_
from fifo_opensora.causal_vae import SCALING_FACTOR, CausalVAE, tiny_config

SETTINGS = [(1, 1), (2, 1), (4, 1), (4, 4), (8, 4), (16, 1)]  # (context, chunk)


def synthetic_video(frames: int, size: int) -> torch.Tensor:
    """``'1 3 T H W'`` in [-1, 1]: two discs moving over a slowly shifting gradient."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    video = []
    for t in range(frames):
        phase = t / max(frames - 1, 1)
        red = ((x - 0.2 - 0.6 * phase) ** 2 + (y - 0.4) ** 2 < 0.02).float()
        blue = ((x - 0.7) ** 2 + (y - 0.2 - 0.5 * phase) ** 2 < 0.015).float()
        background = 0.3 * (x + y * phase)
        video.append(torch.stack([background + red, background + 0.2 * blue, background + blue]))
    return (torch.stack(video, dim=1)[None].clamp(0, 1) * 2 - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", help="a released vae/ folder; default: the tiny config with seeded random weights")
    parser.add_argument("--latents", type=int, default=17, help="latent frames of the test video (17 = 65 video frames)")
    parser.add_argument("--size", type=int, default=64, help="video height and width in pixels")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    vae = CausalVAE.from_pretrained(args.vae, device=device) if args.vae else random_fill_(CausalVAE.from_config(tiny_config()), 0).to(device)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"VAE: {args.vae or 'tiny config, seeded random weights'}; {args.size}x{args.size}, {args.latents} latents; {machine}")
    with torch.no_grad():
        video = synthetic_video(1 + 4 * (args.latents - 1), args.size).to(device)
        latents = vae.encode(video)[0] * SCALING_FACTOR  # 'c t h w', as the queue hands them out
        whole = vae.decode(latents[None] / SCALING_FACTOR)[0].clamp(-1, 1)
    reference = np.stack([to_uint8_frame(whole[:, k]) for k in range(whole.shape[1])]).astype(np.float64)

    def decode_clip(clip: torch.Tensor) -> torch.Tensor:
        return vae.decode(clip[None] / SCALING_FACTOR)[0].clamp(-1, 1)

    header = f"{'context':>7} {'chunk':>5} {'latents per call':>16} {'mean |diff| (levels)':>21} {'PSNR dB':>8}"
    print(header)
    print("-" * len(header))
    for context, chunk in SETTINGS:
        decoder = ChunkedClipDecoder(decode_clip, per_latent=vae.temporal_compression, context=context, chunk=chunk)
        with torch.no_grad():
            frames = [frame for k in range(latents.shape[1]) for frame in decoder.decode(latents[:, k])] + decoder.flush()
        chunked = np.stack(frames).astype(np.float64)
        error = np.abs(chunked - reference).mean()
        mse = ((chunked - reference) ** 2).mean()
        psnr = 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")
        print(f"{context:>7} {chunk:>5} {context + chunk:>16} {error:>21.2f} {psnr:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
