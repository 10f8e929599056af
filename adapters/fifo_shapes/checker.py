"""Does a video show what its prompt says? A per-frame checker for the shapes world.

The world is known exactly (:mod:`fifo_shapes.world`), so each frame is measured, not judged:

1. the frame is area-averaged down to the world's ``32 x 32`` pixels;
2. **background**: the per-channel median colour (the shape covers about a tenth of the frame),
   named by the nearest palette colour;
3. **shape pixels**: those farther than ``FOREGROUND_DISTANCE`` from the background colour; their
   median colour, named by the nearest palette colour, is the shape's **colour**;
4. **shape and position**: the shape pixels are matched against each shape's template at every
   position on the torus (circular cross-correlation); the best intersection-over-union names the
   shape, and its position is the shape's centre;
5. **motion**, for frame ``k``: the centre's steps over frames ``k - 2 .. k + 2`` (torus-shortest
   differences) must average one pixel per frame in the prompt's direction (``moving ...``), or one
   pixel per frame along both axes while staying clear of the edges (``bouncing``).

A frame agrees with its prompt when colour, shape and motion (and the background, if the prompt
names one) all match. On clips drawn by the world itself every frame agrees (tests check this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fifo_shapes.world import BACKGROUNDS, COLOURS, MOTIONS, PALETTE, RADIUS, SHAPES, SIZE, Caption, shape_masks, torus_offset

FOREGROUND_DISTANCE = 60.0  # RGB distance (0..255 units) that separates shape pixels from background
MIN_IOU = 0.6  # a template must cover the shape pixels at least this well
MOTION_HALF_WINDOW = 2  # frames each side of frame k used for its motion
STEP_TOLERANCE = 0.5  # pixels per frame

_PALETTE_NAMES = tuple(PALETTE)
_PALETTE = np.array([PALETTE[name] for name in _PALETTE_NAMES], dtype=np.float32)
_VELOCITY = {"moving left": (-1.0, 0.0), "moving right": (1.0, 0.0), "moving up": (0.0, -1.0), "moving down": (0.0, 1.0)}


def _templates() -> np.ndarray:
    """``'s h w'`` float masks of each shape centred at the origin (wrapped round the torus)."""
    centre = torch.zeros(len(SHAPES), 1, 2, dtype=torch.long)
    return shape_masks(torch.arange(len(SHAPES)), centre)[:, 0].numpy().astype(np.float32)


_TEMPLATES = _templates()
_TEMPLATE_SPECTRA = np.fft.rfft2(_TEMPLATES)
_TEMPLATE_AREAS = _TEMPLATES.sum(axis=(1, 2))


def _nearest_colour(rgb: np.ndarray, names: Iterable[str] = _PALETTE_NAMES) -> str:
    names = tuple(names)
    colours = np.array([PALETTE[name] for name in names], dtype=np.float32)
    return names[int(np.argmin(((colours - rgb) ** 2).sum(axis=1)))]


def to_world_pixels(frame: np.ndarray) -> np.ndarray:
    """``'h w 3'`` uint8 of any multiple of the world's size to ``'32 32 3'`` float (area average)."""
    height, width, _ = frame.shape
    if height % SIZE or width % SIZE:
        raise ValueError(f"frames must be a multiple of {SIZE} pixels on each side, got {width}x{height}")
    return frame.astype(np.float32).reshape(SIZE, height // SIZE, SIZE, width // SIZE, 3).mean(axis=(1, 3))


@dataclass(frozen=True)
class FrameObservation:
    """What one frame shows; ``shape``, ``colour`` and ``centre`` are ``None`` with no shape pixels."""

    background: str
    colour: str | None
    shape: str | None
    iou: float
    centre: tuple[int, int] | None  # (x, y)
    area: int


def observe(frame: np.ndarray) -> FrameObservation:
    """Measure one frame ``'h w 3'`` uint8."""
    pixels = to_world_pixels(frame)
    background_rgb = np.median(pixels.reshape(-1, 3), axis=0)
    background = _nearest_colour(background_rgb)
    mask = np.sqrt(((pixels - background_rgb) ** 2).sum(axis=-1)) > FOREGROUND_DISTANCE
    area = int(mask.sum())
    if area == 0:
        return FrameObservation(background, None, None, 0.0, None, 0)
    colour = _nearest_colour(np.median(pixels[mask], axis=0))
    # Intersection of the mask with each template shifted to every (y, x): a circular correlation.
    intersections = np.fft.irfft2(np.fft.rfft2(mask.astype(np.float32))[None] * np.conj(_TEMPLATE_SPECTRA), s=(SIZE, SIZE))
    ious = intersections / (area + _TEMPLATE_AREAS[:, None, None] - intersections)
    best = np.unravel_index(int(np.argmax(ious)), ious.shape)
    shape_index, y, x = (int(v) for v in best)
    return FrameObservation(background, colour, SHAPES[shape_index], float(ious[best]), (x, y), area)


@dataclass(frozen=True)
class FrameVerdict:
    colour: bool
    shape: bool
    motion: bool
    background: bool

    @property
    def agrees(self) -> bool:
        return self.colour and self.shape and self.motion and self.background


def _torus_step(a: int, b: int) -> int:
    return torus_offset(b - a)


def _motion_matches(motion: str, centres: Sequence[tuple[int, int] | None], frame: int) -> bool:
    low, high = max(frame - MOTION_HALF_WINDOW, 0), min(frame + MOTION_HALF_WINDOW, len(centres) - 1)
    track = centres[low : high + 1]
    if len(track) < 2 or any(centre is None for centre in track):
        return False
    steps = np.array([[_torus_step(a[0], b[0]), _torus_step(a[1], b[1])] for a, b in zip(track, track[1:])], dtype=np.float32)
    if motion == "bouncing":
        speed = np.abs(steps).mean(axis=0)
        x, y = centres[frame]
        inside = all(RADIUS - 1 <= value <= SIZE - RADIUS for value in (x, y))
        return inside and bool((np.abs(speed - 1.0) <= STEP_TOLERANCE).all())
    mean = steps.mean(axis=0)
    return bool((np.abs(mean - np.array(_VELOCITY[motion])) <= STEP_TOLERANCE).all())


def check_frames(frames: Sequence[np.ndarray] | Sequence[FrameObservation], caption: Caption) -> list[FrameVerdict]:
    """One verdict per frame of a video (frames ``'h w 3'`` uint8, or their observations)."""
    observations = [frame if isinstance(frame, FrameObservation) else observe(frame) for frame in frames]
    centres = [o.centre if o.shape is not None and o.iou >= MIN_IOU else None for o in observations]
    verdicts = []
    for index, seen in enumerate(observations):
        verdicts.append(
            FrameVerdict(
                colour=seen.colour == caption.colour,
                shape=seen.shape == caption.shape and seen.iou >= MIN_IOU,
                motion=_motion_matches(caption.motion, centres, index),
                background=caption.background is None or seen.background == caption.background,
            )
        )
    return verdicts


@dataclass
class Agreement:
    """Fractions of frames that agree with their prompts, overall and per aspect."""

    frames: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("agrees", "colour", "shape", "motion", "background"), 0))

    def add(self, verdicts: Iterable[FrameVerdict]) -> None:
        for verdict in verdicts:
            self.frames += 1
            self.counts["agrees"] += verdict.agrees
            for aspect in ("colour", "shape", "motion", "background"):
                self.counts[aspect] += getattr(verdict, aspect)

    def fraction(self, aspect: str = "agrees") -> float:
        return self.counts[aspect] / self.frames if self.frames else 0.0

    def describe(self) -> str:
        parts = ", ".join(f"{aspect} {self.fraction(aspect):.1%}" for aspect in ("colour", "shape", "motion", "background"))
        return f"{self.fraction():.1%} of {self.frames} frames agree ({parts})"


def evaluation_prompts(count: int = 20, seed: int = 0) -> list[Caption]:
    """``count`` captions of the grammar: motions and shapes in turn (so each appears), colours
    drawn with a seeded generator, and every other prompt naming a background."""
    rng = np.random.default_rng(seed)
    captions = []
    for index in range(count):
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        background = None
        if index % 2 == 0:
            allowed = [name for name in BACKGROUNDS if name != colour]
            background = allowed[int(rng.integers(len(allowed)))]
        captions.append(Caption(colour, SHAPES[index % len(SHAPES)], MOTIONS[index % len(MOTIONS)], background))
    return captions


__all__ = [
    "Agreement",
    "FrameObservation",
    "FrameVerdict",
    "check_frames",
    "evaluation_prompts",
    "observe",
    "to_world_pixels",
]
