"""Outputs continued by a resumed run (issue #18): an MP4 goes on with no frame lost or repeated,
a PNG folder goes on numbering, and what a killed run left behind is taken into account."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fifo_core.errors import SinkError
from fifo_core.sink import SinkSettings
from fifo_sinks import ImageSequenceSink, Mp4Sink
from fifo_sinks.mp4 import continuation_path

from .coded_frames import coded_frame, mean_abs_error, read_index
from .test_mp4 import read_back

SETTINGS = SinkSettings(fps=8.0)


def write(sink, indices) -> None:
    sink.reserve()
    with sink:
        for index in indices:
            sink.write(coded_frame(index))


def continued(sink_class, target: Path, position: int):
    sink_class.check_continue(str(target), SETTINGS, position)
    sink = sink_class(str(target), SETTINGS)
    sink.continue_from(position)
    return sink


@pytest.mark.timeout(90)
def test_an_mp4_continues_without_losing_or_repeating_a_frame(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    write(Mp4Sink(str(target), SETTINGS), range(30))  # the killed run wrote 30 frames ...
    sink = continued(Mp4Sink, target, 25)  # ... but its state was saved at 25
    write(sink, range(25, 50))  # the resumed run makes 25..29 again (dropped), then new ones
    assert sink.frames_written == 50
    _, frames = read_back(target)
    assert [read_index(frame) for frame in frames] == list(range(50))
    assert max(mean_abs_error(frame, coded_frame(index)) for index, frame in enumerate(frames)) < 6
    assert not continuation_path(str(target)).exists()


@pytest.mark.timeout(90)
def test_a_continuation_left_by_a_killed_resume_is_joined_first(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    write(Mp4Sink(str(target), SETTINGS), range(20))
    # a resumed run killed before its join left frames 20..27 in the continuation file
    leftover = Mp4Sink(str(continuation_path(str(target))), SinkSettings(fps=8.0, overwrite=True))
    write(leftover, range(20, 28))
    sink = continued(Mp4Sink, target, 24)  # its last saved state: 24 frames
    write(sink, range(24, 40))
    _, frames = read_back(target)
    assert [read_index(frame) for frame in frames] == list(range(40))


def test_an_mp4_that_lost_frames_is_refused_before_anything_changes(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    write(Mp4Sink(str(target), SETTINGS), range(10))
    before = target.read_bytes()
    with pytest.raises(SinkError, match="holds 10 frames, but the saved run had written 12.*--sink NEW.mp4"):
        Mp4Sink.check_continue(str(target), SETTINGS, 12)
    assert target.read_bytes() == before


def test_a_png_folder_continues_its_numbering_and_rewrites_what_came_after_the_state(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write(ImageSequenceSink(f"{folder}/", SETTINGS), range(12))
    sink = continued(ImageSequenceSink, folder, 10)
    write(sink, range(10, 15))
    names = sorted(path.name for path in folder.glob("frame_*.png"))
    assert names == [f"frame_{index:06d}.png" for index in range(15)]
    from PIL import Image

    assert all(np.array_equal(np.asarray(Image.open(folder / name)), coded_frame(index)) for index, name in enumerate(names))


def test_a_png_folder_missing_saved_frames_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write(ImageSequenceSink(f"{folder}/", SETTINGS), range(3))
    with pytest.raises(SinkError, match="should hold 5 frames"):
        ImageSequenceSink.check_continue(f"{folder}/", SETTINGS, 5)


def test_a_stream_reconnects_and_a_sink_that_cannot_continue_says_how_to_go_on() -> None:
    from fifo_core.sink import Sink
    from fifo_sinks import RtmpSink

    RtmpSink.check_continue("rtmp://127.0.0.1/live/key", SETTINGS, 500)  # a stream keeps nothing: it connects again
    with pytest.raises(SinkError):
        RtmpSink.check_continue("rtmp://", SETTINGS, 500)

    class ThirdPartySink(Sink):
        name = "gif"

        def _open(self, height, width): ...
        def _write(self, frame): ...
        def _close(self): ...

    with pytest.raises(SinkError, match="gif sink cannot continue 'a.gif' after a resume; resume with --sink NEW_TARGET"):
        ThirdPartySink.check_continue("a.gif", SETTINGS, 10)
