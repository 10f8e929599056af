"""Seeded "random" tensors that are the same on every machine and every torch version.

The equivalence data (``data/reference_tiny.safetensors``) holds the outputs of VideoCrafter's own
code for weights and inputs made here; rather than committing megabytes of weights, both sides
regenerate them from ``(seed, key)`` with integer hashing, which involves no RNG implementation
and no floating-point function that could round differently elsewhere.

Values are uniform with unit variance times a scale: ``1/sqrt(fan_in)`` for matrices and kernels,
``1 + 0.2 u`` for 1-D weights (every one is a norm's), ``0.2 u`` for biases. Every parameter is
filled, so no zero-initialised layer can hide a difference.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch

_MASK = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer in int64 arithmetic (products stay below 2**63)."""
    x = x & _MASK
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _MASK
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _MASK
    return x ^ (x >> 16)


def uniform(shape: tuple[int, ...], key: str, seed: int = 0) -> torch.Tensor:
    """Float32 values in ``[-sqrt(3), sqrt(3))`` (unit variance), determined by ``(seed, key)``."""
    count = math.prod(shape)
    base = _hash32(torch.tensor(zlib.crc32(key.encode()) ^ (seed * 0x9E3779B1 & _MASK), dtype=torch.int64))
    bits = _hash32(_hash32(torch.arange(count, dtype=torch.int64) + base) + 0x632BE5AB)
    unit = bits.to(torch.float64) / 2.0**32  # [0, 1), exact
    return ((2.0 * unit - 1.0) * math.sqrt(3.0)).to(torch.float32).reshape(shape)


def seeded_state_dict(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in shapes.items():
        u = uniform(tuple(shape), key, seed)
        if len(shape) >= 2:
            state[key] = u / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            state[key] = 1.0 + 0.2 * u
        else:
            state[key] = 0.2 * u
    return state


def tiny_checkpoint_state(architecture, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full checkpoint state dict in the original layout: seeded weights plus the schedule buffers."""
    from fifo_videocrafter.checkpoint import expected_shapes
    from fifo_videocrafter.schedule import checkpoint_buffers

    buffers = checkpoint_buffers(architecture.schedule)
    shapes = {key: shape for key, shape in expected_shapes(architecture).items() if key not in buffers}
    return seeded_state_dict(shapes, seed) | buffers


def write_tiny_checkpoint(architecture, path: Path, seed: int = 0, wrap: bool = True) -> Path:
    """Save as ``model.ckpt`` is saved: a ``torch.save`` pickle, the weights under ``state_dict``."""
    state = tiny_checkpoint_state(architecture, seed)
    torch.save({"state_dict": state} if wrap else state, path)
    return path
