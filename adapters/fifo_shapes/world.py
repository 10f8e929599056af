"""The synthetic world the default model is trained on: one coloured shape moving over a plain
background, with a caption from a small grammar.

Grammar (every prompt the world can caption; the words are the vocabulary, docs/default-model.md):

    prompt     := "a" COLOUR SHAPE MOTION [ "on a" BACKGROUND "background" ]
    COLOUR     := red | green | blue | yellow | white | purple
    SHAPE      := circle | square | triangle
    MOTION     := moving left | moving right | moving up | moving down | bouncing
    BACKGROUND := black | gray | blue | green          (never the shape's own colour)

Motions continue for ever, so a video of any length stays on its prompt:

* ``moving left/right/up/down``: one pixel per frame; the frame is a torus, so a shape leaving one
  edge comes back in at the opposite edge (it is drawn split across the two edges meanwhile);
* ``bouncing``: one pixel per frame along both axes, reflected by the walls (it never wraps).

A frame is ``SIZE x SIZE`` pixels (32), shapes are about 11 pixels across, every position is a
whole pixel, and colours come from one fixed palette, so the world is exactly known: the checker
(:mod:`fifo_shapes.checker`) measures generated frames against it.

Shapes: clips ``'b c f h w'`` float in ``[-1, 1]``; positions ``'b f 2'`` as ``(x, y)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

SIZE = 32
SPEED = 1  # pixels per frame along each moving axis
RADIUS = 5  # half the extent of a shape, in pixels

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 50),
    "white": (245, 245, 245),
    "purple": (150, 60, 200),
    "black": (10, 10, 10),
    "gray": (128, 128, 128),
}
COLOURS = ("red", "green", "blue", "yellow", "white", "purple")
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "bouncing")
BACKGROUNDS = ("black", "gray", "blue", "green")

# (dx, dy) per frame of the wrapping motions; y grows downwards, as in images.
_VELOCITY = {"moving left": (-SPEED, 0), "moving right": (SPEED, 0), "moving up": (0, -SPEED), "moving down": (0, SPEED)}

_PROMPT = re.compile(
    rf"^\s*an?\s+(?P<colour>{'|'.join(COLOURS)})\s+(?P<shape>{'|'.join(SHAPES)})\s+(?P<motion>{'|'.join(MOTIONS)})"
    rf"(?:\s+on\s+an?\s+(?P<background>{'|'.join(BACKGROUNDS)})\s+background)?\s*\.?\s*$"
)


def vocabulary() -> list[str]:
    """Every word the grammar uses, sorted."""
    words = {"a", "on", "background"}
    for phrase in (*COLOURS, *SHAPES, *MOTIONS, *BACKGROUNDS):
        words.update(phrase.split())
    return sorted(words)


@dataclass(frozen=True)
class Caption:
    """What a clip shows; ``background`` is ``None`` when the prompt leaves it open."""

    colour: str
    shape: str
    motion: str
    background: str | None = None

    def __post_init__(self) -> None:
        for value, choices, what in (
            (self.colour, COLOURS, "colour"),
            (self.shape, SHAPES, "shape"),
            (self.motion, MOTIONS, "motion"),
        ):
            if value not in choices:
                raise ValueError(f"unknown {what} {value!r}; the world knows {', '.join(choices)}")
        if self.background is not None:
            if self.background not in BACKGROUNDS:
                raise ValueError(f"unknown background {self.background!r}; the world knows {', '.join(BACKGROUNDS)}")
            if self.background == self.colour:
                raise ValueError(f"a {self.colour} shape on a {self.background} background would be invisible; pick another colour")

    @property
    def text(self) -> str:
        text = f"a {self.colour} {self.shape} {self.motion}"
        return text if self.background is None else f"{text} on a {self.background} background"

    @classmethod
    def parse(cls, prompt: str) -> Caption:
        """The caption a prompt of the grammar describes; a :class:`ValueError` otherwise."""
        match = _PROMPT.match(prompt.lower())
        if match is None:
            raise ValueError(
                f"{prompt!r} is not in the shapes grammar; write 'a COLOUR SHAPE MOTION [on a BACKGROUND background]', "
                f"for example 'a red circle moving left on a blue background' (docs/default-model.md lists the words)"
            )
        return cls(**match.groupdict())


def all_captions(with_background: bool = True) -> list[Caption]:
    """Every caption of the grammar, in a fixed order."""
    captions = []
    for colour in COLOURS:
        for shape in SHAPES:
            for motion in MOTIONS:
                if not with_background:
                    captions.append(Caption(colour, shape, motion))
                    continue
                captions += [Caption(colour, shape, motion, bg) for bg in BACKGROUNDS if bg != colour]
    return captions


def palette_tensor(names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """``'k 3'`` colours in ``[-1, 1]``."""
    return torch.tensor([PALETTE[name] for name in names], dtype=torch.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class ClipBatch:
    """Clips with everything needed to draw them; indices point into the tuples above."""

    colour: torch.Tensor  # 'b' long into COLOURS
    shape: torch.Tensor  # 'b' long into SHAPES
    motion: torch.Tensor  # 'b' long into MOTIONS
    background: torch.Tensor  # 'b' long into BACKGROUNDS
    positions: torch.Tensor  # 'b f 2' long, (x, y) of the shape's centre

    def caption(self, row: int, with_background: bool = True) -> Caption:
        return Caption(
            COLOURS[int(self.colour[row])],
            SHAPES[int(self.shape[row])],
            MOTIONS[int(self.motion[row])],
            BACKGROUNDS[int(self.background[row])] if with_background else None,
        )


def trajectories(motion: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Positions ``'b f 2'`` of the shape's centre for motions ``'b'`` (indices into MOTIONS)."""
    batch = motion.shape[0]
    start = torch.randint(0, SIZE, (batch, 2), generator=generator)
    steps = torch.arange(frames)[None, :, None]
    velocity = torch.zeros(batch, 2, dtype=torch.long)
    for index, name in enumerate(MOTIONS):
        if name in _VELOCITY:
            velocity[motion == index] = torch.tensor(_VELOCITY[name])
    positions = (start[:, None, :] + steps * velocity[:, None, :]) % SIZE
    bouncing = motion == MOTIONS.index("bouncing")
    if bool(bouncing.any()):
        # A reflected walk between the walls is a triangle wave of the unfolded walk.
        low, high = RADIUS, SIZE - 1 - RADIUS
        span = high - low
        count = int(bouncing.sum())
        phase = torch.randint(0, 2 * span, (count, 2), generator=generator)
        unfolded = (phase[:, None, :] + steps * SPEED) % (2 * span)
        positions[bouncing] = low + torch.where(unfolded <= span, unfolded, 2 * span - unfolded)
    return positions


def random_clips(batch: int, frames: int, generator: torch.Generator, bouncing_weight: float = 1.0) -> ClipBatch:
    """``batch`` clips of ``frames`` frames with every grammar element drawn uniformly, except that
    ``bouncing`` is drawn ``bouncing_weight`` times as often as each other motion."""
    colour = torch.randint(0, len(COLOURS), (batch,), generator=generator)
    background = torch.randint(0, len(BACKGROUNDS), (batch,), generator=generator)
    # A background of the shape's own colour moves to the next background in the list.
    same = torch.tensor([BACKGROUNDS[b] == COLOURS[c] for b, c in zip(background.tolist(), colour.tolist())], dtype=torch.bool)
    background = torch.where(same, (background + 1) % len(BACKGROUNDS), background)
    shape = torch.randint(0, len(SHAPES), (batch,), generator=generator)
    if bouncing_weight == 1.0:
        motion = torch.randint(0, len(MOTIONS), (batch,), generator=generator)
    else:
        weights = torch.tensor([bouncing_weight if name == "bouncing" else 1.0 for name in MOTIONS])
        motion = torch.multinomial(weights, batch, replacement=True, generator=generator)
    return ClipBatch(colour, shape, motion, background, trajectories(motion, frames, generator))


def clips_for(caption: Caption, batch: int, frames: int, generator: torch.Generator) -> ClipBatch:
    """Clips of one caption (an open background is drawn at random)."""
    def full(value: int) -> torch.Tensor:
        return torch.full((batch,), value, dtype=torch.long)

    motion = full(MOTIONS.index(caption.motion))
    if caption.background is None:
        allowed = [index for index, name in enumerate(BACKGROUNDS) if name != caption.colour]
        background = torch.tensor(allowed)[torch.randint(0, len(allowed), (batch,), generator=generator)]
    else:
        background = full(BACKGROUNDS.index(caption.background))
    return ClipBatch(
        full(COLOURS.index(caption.colour)), full(SHAPES.index(caption.shape)), motion, background,
        trajectories(motion, frames, generator),
    )


def torus_offset(difference, size: int = SIZE):
    """A difference of coordinates taken the short way round a torus of ``size`` pixels, in
    ``[-size/2, size/2)``; for ints, floats and tensors alike."""
    return (difference + size // 2) % size - size // 2


def shape_masks(shape: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Boolean masks ``'b f h w'`` of shapes ``'b'`` centred at ``positions`` ``'b f 2'``, on the torus."""
    device = positions.device
    grid = torch.arange(SIZE, device=device)
    dx = torus_offset(grid[None, None, None, :] - positions[..., 0, None, None])
    dy = torus_offset(grid[None, None, :, None] - positions[..., 1, None, None])
    circle = dx * dx + dy * dy <= RADIUS * RADIUS
    square = (dx.abs() <= RADIUS - 1) & (dy.abs() <= RADIUS - 1)
    # Pointing up: one pixel at the apex, widening by one pixel each side every other row.
    triangle = (dy >= -RADIUS) & (dy <= RADIUS - 1) & (2 * dx.abs() <= dy + RADIUS + 1)
    kind = shape.to(device)[:, None, None, None]
    return torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))


def render(clips: ClipBatch, device: torch.device | str | None = None) -> torch.Tensor:
    """Clips ``'b 3 f h w'`` in ``[-1, 1]``."""
    positions = clips.positions.to(device)
    masks = shape_masks(clips.shape, positions)[:, None]  # 'b 1 f h w'
    foreground = palette_tensor(COLOURS).to(positions.device)[clips.colour.to(positions.device)]
    background = palette_tensor(BACKGROUNDS).to(positions.device)[clips.background.to(positions.device)]
    shape = (-1, 3, 1, 1, 1)
    return torch.where(masks, foreground.reshape(shape), background.reshape(shape))
