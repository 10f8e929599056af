"""Test frames that carry their own index, so frames read back from a lossy H.264 stream can be
matched to the frames that were written: the top half is 8 black/white bars spelling the index in
binary (sharp, so they survive compression), the bottom half a smooth picture that changes with
the index (for comparing pixel values)."""

from __future__ import annotations

import numpy as np

HEIGHT, WIDTH = 64, 128
BITS = 8
BAR_WIDTH = WIDTH // BITS


def coded_frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """An ``'h w 3'`` uint8 frame whose bars spell ``index % 256``."""
    frame = np.empty((height, width, 3), np.uint8)
    bar_width = width // BITS
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        frame[: height // 2, bit * bar_width : (bit + 1) * bar_width] = 255 if on else 0
    frame[: height // 2, BITS * bar_width :] = 0
    y, x = np.mgrid[0 : height - height // 2, 0:width]
    phase = index * 0.3
    frame[height // 2 :, :, 0] = 128 + 90 * np.sin(x / 11 + phase)
    frame[height // 2 :, :, 1] = 128 + 90 * np.cos(y / 7 - phase)
    frame[height // 2 :, :, 2] = (x + y) * 255 // (width + height)
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index spelled by the bars of a (possibly compressed) coded frame."""
    height, width = frame.shape[:2]
    bar_width = width // BITS
    index = 0
    for bit in range(BITS):
        # the middle of each bar, away from the edges where H.264 rings
        middle = frame[height // 8 : height * 3 // 8, bit * bar_width + bar_width // 4 : (bit + 1) * bar_width - bar_width // 4]
        index = (index << 1) | int(middle.mean() > 128)
    return index


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
