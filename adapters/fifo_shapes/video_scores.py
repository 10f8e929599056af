"""Scores of a long video of the shapes world, per frame and over windows of frames.

The checker (:mod:`fifo_shapes.checker`) says whether each frame agrees with its prompt; this
module adds what a long video needs on top, all measured on the world's ``32 x 32`` pixels:

* **motion consistency**: the fraction of consecutive frame pairs whose shape moved by exactly
  the prompt's step (``moving ...``: one pixel in its direction; ``bouncing``: one pixel along
  both axes), and the mean speed in pixels per frame (torus-shortest);
* **frame-to-frame change**: the mean absolute difference of consecutive frames, 0..255 units
  (a jump between chunks shows up here, see :func:`fifo_core.video_metrics.boundary_discontinuity`);
* **pixel statistics**: mean and standard deviation of the pixels, the shape's area in pixels, and
  the mean distance of a pixel to the nearest palette colour (0 for frames the world draws; colour
  drift or blur raises it).

Frames are ``'h w 3'`` uint8 of any multiple of 32 pixels; :func:`world_frames` reduces a stream of
them to ``'k 32 32 3'`` uint8, which is all the scores need (and small enough to keep 10,000 of).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fifo_core.video_metrics import frame_changes
from fifo_shapes.checker import MIN_IOU, check_frames, observe, to_world_pixels
from fifo_shapes.world import PALETTE, Caption, torus_offset

_PALETTE = np.array(list(PALETTE.values()), dtype=np.float32)
_STEPS = {"moving left": (-1, 0), "moving right": (1, 0), "moving up": (0, -1), "moving down": (0, 1)}
SCORE_NAMES = ("agrees", "colour", "shape", "motion", "background", "exact_step", "speed", "change", "mean", "std", "area", "off_palette")


def world_frames(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Frames ``'h w 3'`` uint8 to the world's pixels ``'k 32 32 3'`` uint8 (area average, rounded)."""
    return np.stack([np.round(to_world_pixels(frame)).astype(np.uint8) for frame in frames])


@dataclass(frozen=True)
class FrameScores:
    """One value per frame for every score in :data:`SCORE_NAMES` (``'k'`` float arrays). Scores of a
    frame pair (``exact_step``, ``speed``, ``change``) belong to the later frame; frame 0 has NaN."""

    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.values["agrees"])

    def over_windows(self, size: int) -> list[dict[str, float]]:
        """The mean of every score over consecutive windows of ``size`` frames (a shorter last
        window is dropped unless it is the only one), each with its first frame as ``start``."""
        count = max(len(self) // size, 1)
        windows = []
        for index in range(count):
            part = slice(index * size, min((index + 1) * size, len(self)))
            row = {name: float(np.nanmean(values[part])) for name, values in self.values.items()}
            windows.append({"start": float(part.start)} | row)
        return windows


def score_frames(frames: np.ndarray, caption: Caption) -> FrameScores:
    """Every score of every frame of a video ``'k h w 3'`` uint8 whose prompt is ``caption``."""
    pixels = world_frames(frames) if frames.shape[1] != 32 else frames
    observations = [observe(frame) for frame in pixels]
    verdicts = check_frames(observations, caption)
    values = {aspect: np.array([float(getattr(v, aspect)) for v in verdicts]) for aspect in ("colour", "shape", "motion", "background")}
    values = {"agrees": np.array([float(v.agrees) for v in verdicts])} | values
    centres = [o.centre if o.shape is not None and o.iou >= MIN_IOU else None for o in observations]
    exact, speed = np.full(len(pixels), np.nan), np.full(len(pixels), np.nan)
    for index in range(1, len(pixels)):
        before, after = centres[index - 1], centres[index]
        if before is None or after is None:
            exact[index], speed[index] = 0.0, np.nan
            continue
        dx, dy = (int(torus_offset(after[axis] - before[axis])) for axis in (0, 1))
        speed[index] = float(np.hypot(dx, dy))
        if caption.motion == "bouncing":
            exact[index] = float(abs(dx) == 1 and abs(dy) == 1)
        else:
            exact[index] = float((dx, dy) == _STEPS[caption.motion])
    values["exact_step"], values["speed"] = exact, speed
    values["change"] = np.concatenate([[np.nan], frame_changes(pixels)])
    floats = pixels.astype(np.float32)
    values["mean"] = floats.mean(axis=(1, 2, 3))
    values["std"] = floats.std(axis=(1, 2, 3))
    values["area"] = np.array([float(o.area) for o in observations])
    distance = np.sqrt(((floats[..., None, :] - _PALETTE) ** 2).sum(axis=-1)).min(axis=-1)
    values["off_palette"] = distance.mean(axis=(1, 2))
    return FrameScores(values)
