"""Refusing a run whose tensors cannot fit before anything is allocated."""

from __future__ import annotations

import os

import torch


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``: MemAvailable of the host for the CPU, the free memory CUDA
    reports for a GPU; ``None`` where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def tensor_bytes_lower_bound(latent_shape: tuple[int, ...], queue_frames: int, rows_per_call: int, window: int) -> int:
    """Bytes the run's float32 tensors need at least: the queue of ``queue_frames`` latent
    frames plus one model call's input and output (``rows_per_call`` windows of ``window``
    frames). The model's own activations come on top, so this only catches runs that cannot
    possibly fit."""
    per_frame = 4
    for side in latent_shape:
        per_frame *= side
    return per_frame * (queue_frames + 2 * rows_per_call * window)


def check_run_fits(backbone: object, latent_shape: tuple[int, ...], queue_frames: int, rows_per_call: int, window: int) -> None:
    """Raise :class:`ConfigError` when the run's tensors alone exceed the free memory of the
    backbone's device."""
    from fifo_core.errors import ConfigError

    device = torch.device(getattr(backbone, "device", "cpu"))
    available = available_memory_bytes(device)
    needed = tensor_bytes_lower_bound(latent_shape, queue_frames, rows_per_call, window)
    if available is None or needed <= available:
        return
    raise ConfigError(
        f"this run needs at least {needed / 1e6:,.0f} MB for its latent tensors alone (latents shaped {tuple(latent_shape)}, "
        f"{queue_frames} in the queue, {rows_per_call} windows per model call), and {device} has {available / 1e6:,.0f} MB of memory free; "
        "lower --height/--width, or --max-batch to send fewer windows per call",
        field="height",
    )
