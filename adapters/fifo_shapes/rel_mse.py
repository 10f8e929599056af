"""Clips of the shapes world for the relative MSE of noise prediction (paper Fig. 5, Table 2).

The measurement itself is the core's and works for any backbone (:mod:`fifo_core.rel_mse`,
:func:`~fifo_core.rel_mse.backbone_rel_mse`); this module supplies what is particular to the
default model: clean clips of its world with their captions, drawn with a seeded generator.

Shapes: clips ``'m 3 f 32 32'`` in ``[-1, 1]`` (``m`` draws).
"""

from __future__ import annotations

import torch

from fifo_shapes.world import random_clips, render


def world_clips(count: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """``count`` clean clips ``'m 3 f 32 32'`` of the shapes world and their full captions."""
    generator = torch.Generator().manual_seed(seed)
    clips = random_clips(count, frames, generator)
    return render(clips), [clips.caption(row).text for row in range(count)]
