"""Model-free measures of a video's continuity, for comparing long-video strategies.

* :func:`frame_changes`: the mean absolute difference of each pair of consecutive frames;
* :func:`boundary_discontinuity`: that change at the frames where a strategy joins two pieces
  (chunk boundaries) against the change everywhere else. A video with no seams has a ratio near
  1; independent clips joined end to end jump at every boundary;
* :func:`jumps`: the frame pairs whose change is several times the video's median change,
  wherever they are (a strategy may jump away from its nominal seams).

Frames: ``'k h w c'`` arrays (uint8 or float); changes: ``'k-1'`` float64, change ``i`` is between
frames ``i`` and ``i + 1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between frames ``i`` and ``i + 1``, in the frames' own units."""
    frames = np.asarray(frames, dtype=np.float64)
    if len(frames) < 2:
        return np.zeros(0)
    return np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).mean(axis=1)


@dataclass(frozen=True)
class Discontinuity:
    """Mean frame-to-frame change across boundaries and elsewhere; ``ratio`` is their quotient
    (NaN when there is no boundary)."""

    at_boundaries: float
    elsewhere: float
    boundaries: int

    @property
    def ratio(self) -> float:
        if self.boundaries == 0 or self.elsewhere == 0:
            return float("nan")
        return self.at_boundaries / self.elsewhere


def boundary_discontinuity(changes: np.ndarray, boundaries: Iterable[int]) -> Discontinuity:
    """``changes`` from :func:`frame_changes`; ``boundaries`` are the indices of the first frame of
    each new piece (frame ``b`` follows a seam, so change ``b - 1`` crosses it)."""
    changes = np.asarray(changes, dtype=np.float64)
    seams = sorted({b - 1 for b in boundaries if 1 <= b <= len(changes)})
    mask = np.zeros(len(changes), dtype=bool)
    mask[seams] = True
    at = float(changes[mask].mean()) if mask.any() else float("nan")
    elsewhere = float(changes[~mask].mean()) if (~mask).any() else float("nan")
    return Discontinuity(at, elsewhere, len(seams))


def jumps(changes: np.ndarray, factor: float = 3.0) -> int:
    """How many changes exceed ``factor`` times the median change."""
    changes = np.asarray(changes, dtype=np.float64)
    if len(changes) == 0:
        return 0
    return int((changes > factor * np.median(changes)).sum())
