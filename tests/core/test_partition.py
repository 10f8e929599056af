"""Latent partitioning and lookahead: which slots each window reads and writes (QueueLayout)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fifo_core.errors import ConfigError
from fifo_core.partition import QueueLayout



@st.composite
def valid_layouts(draw) -> QueueLayout:
    lookahead = draw(st.booleans())
    window = draw(st.integers(2 if lookahead else 1, 24))
    return QueueLayout(window=window, partitions=draw(st.integers(1, 6)), lookahead=lookahead)


@settings(max_examples=200, deadline=None)
@given(valid_layouts())
def test_windows_read_f_slots_write_each_denoised_slot_once_and_cover_the_queue(layout: QueueLayout) -> None:
    f, n = layout.window, layout.partitions
    context = f // 2 if layout.lookahead else 0
    # The paper's sizes: S = n*f denoised slots behind f//2 clean context slots (lookahead only).
    assert layout.num_levels == n * f
    assert layout.context == context
    assert layout.length == context + n * f

    written = Counter(slot for window in layout.windows for slot in window.write)
    assert written == Counter(range(context, layout.length)), "every denoised slot is written exactly once"

    read = set()
    for window in layout.windows:
        assert len(window.read) == f, "the model always sees exactly its native window"
        assert 0 <= window.read_start and window.read_stop <= layout.length
        assert window.write_start >= window.read_start and window.write_stop <= window.read_stop
        assert len(window.write) >= 1
        read.update(window.read)
    assert read == set(range(layout.length)), "the windows cover the queue without gaps"
    assert layout.model_calls_per_frame == len(layout.windows)


@settings(max_examples=150, deadline=None)
@given(valid_layouts().filter(lambda layout: layout.lookahead))
def test_lookahead_windows_keep_their_noisier_part_behind_clean_enough_context(layout: QueueLayout) -> None:
    f = layout.window
    for window in layout.windows:
        # Lookahead keeps only the last (noisiest) frames of each window: the written range ends
        # the read range, and at least f//2 frames before it are cleaner context.
        assert window.write_stop == window.read_stop
        assert window.write_start - window.read_start >= f // 2
    # Write ranges hold f - f//2 slots, only the last may be shorter (odd f or n*f not a multiple).
    sizes = [len(window.write) for window in layout.windows]
    assert all(size == f - f // 2 for size in sizes[:-1]) and 1 <= sizes[-1] <= f - f // 2
    if f % 2 == 0:
        assert len(layout.windows) == 2 * layout.partitions, "even f: the paper's 2n windows of stride f/2"
        strides = {b.read_start - a.read_start for a, b in zip(layout.windows, layout.windows[1:])}
        assert strides <= {f // 2}


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 24), st.integers(1, 6))
def test_without_lookahead_n_windows_tile_the_queue(window: int, partitions: int) -> None:
    layout = QueueLayout(window=window, partitions=partitions, lookahead=False)
    assert [(w.read_start, w.read_stop) for w in layout.windows] == [(i * window, (i + 1) * window) for i in range(partitions)]
    assert all(w.read == w.write for w in layout.windows)


def test_odd_window_with_lookahead_has_a_shorter_last_write_range() -> None:
    # f = 5, n = 1: 2 context slots then 5 denoised slots, written in ranges of 3 then 2.
    layout = QueueLayout(window=5, partitions=1, lookahead=True)
    assert layout.context == 2 and layout.length == 7
    assert [(w.read_start, w.read_stop, w.write_start, w.write_stop) for w in layout.windows] == [
        (0, 5, 2, 5),
        (2, 7, 5, 7),
    ]
    # The shorter range's window sees more context (3 frames) rather than reading past the tail.
    layout = QueueLayout(window=3, partitions=3, lookahead=True)
    assert [list(w.write) for w in layout.windows] == [[1, 2], [3, 4], [5, 6], [7, 8], [9]]
    assert Counter(slot for w in layout.windows for slot in w.write) == Counter(range(1, 10))


def test_single_frame_window_without_lookahead_is_one_window_per_slot() -> None:
    layout = QueueLayout(window=1, partitions=3, lookahead=False)
    assert layout.length == 3 and layout.context == 0
    assert [(w.read_start, w.read_stop) for w in layout.windows] == [(0, 1), (1, 2), (2, 3)]


def test_single_frame_window_with_lookahead_is_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        QueueLayout(window=1, partitions=2, lookahead=True)
    message = str(raised.value)
    assert raised.value.field == "window"
    assert "lookahead" in message and "f = 1" in message, "says what is wrong"
    assert "--no-lookahead" in message and "raise f" in message, "says how to fix it"


@pytest.mark.parametrize(("window", "partitions", "field"), [(0, 1, "window"), (4, 0, "partitions")])
def test_empty_layouts_are_refused(window: int, partitions: int, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        QueueLayout(window=window, partitions=partitions, lookahead=False)
    assert raised.value.field == field and "at least 1" in str(raised.value)
