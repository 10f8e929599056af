"""Which queue slots each window reads and writes: latent partitioning and lookahead.

The queue holds ``context + n * f`` slots: ``context = f // 2`` lookahead slots at the head (the
last frames dequeued, clean) when lookahead is on, 0 otherwise, then ``S = n * f`` slots at levels
``1..S``.

* Without lookahead: ``n`` windows of ``f`` slots tile the queue; each writes all it reads.
* With lookahead: the ``n * f`` denoised slots are tiled by write ranges of ``w = f - f // 2``
  slots; each window reads the ``f`` slots that end with its write range, so every written frame
  sees at least ``f // 2`` cleaner frames before it. For even ``f`` this is the paper's ``2n``
  windows of stride ``f/2``. For odd ``f`` the last write range may be shorter; its window then
  simply sees more context. Every denoised slot is written by exactly one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from fifo_core.errors import ConfigError


@dataclass(frozen=True)
class Window:
    """Half-open slot ranges: the model reads ``[read_start, read_stop)`` and the core keeps its
    output for ``[write_start, write_stop)``."""

    read_start: int
    read_stop: int
    write_start: int
    write_stop: int

    @property
    def read(self) -> range:
        return range(self.read_start, self.read_stop)

    @property
    def write(self) -> range:
        return range(self.write_start, self.write_stop)


@dataclass(frozen=True)
class QueueLayout:
    """The shape of a FIFO run: window ``f``, partitions ``n`` and lookahead."""

    window: int
    partitions: int
    lookahead: bool

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"the window f must be at least 1 frame, got {self.window}", field="window")
        if self.partitions < 1:
            raise ConfigError(f"the number of partitions n must be at least 1, got {self.partitions}", field="partitions")
        if self.lookahead and self.window < 2:
            raise ConfigError(
                f"lookahead needs a window of at least 2 frames (it keeps f // 2 clean frames as "
                f"context), got f = {self.window}; raise f or pass --no-lookahead",
                field="window",
            )

    @property
    def context(self) -> int:
        """Clean lookahead slots at the head of the queue."""
        return self.window // 2 if self.lookahead else 0

    @property
    def num_levels(self) -> int:
        """``S = n * f``: the levels a frame passes through, and the denoised slots."""
        return self.window * self.partitions

    @property
    def length(self) -> int:
        return self.context + self.num_levels

    @cached_property
    def windows(self) -> tuple[Window, ...]:
        f, context, stop = self.window, self.context, self.length
        if not self.lookahead:
            return tuple(Window(start, start + f, start, start + f) for start in range(0, stop, f))
        write_size = f - context
        windows = []
        for write_start in range(context, stop, write_size):
            write_stop = min(write_start + write_size, stop)
            windows.append(Window(write_stop - f, write_stop, write_start, write_stop))
        return tuple(windows)

    @property
    def model_calls_per_frame(self) -> int:
        """Window evaluations per output latent (before classifier-free guidance doubles them)."""
        return len(self.windows)
