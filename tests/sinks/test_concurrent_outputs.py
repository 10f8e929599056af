"""Issue #13, item 9: an output that another run is writing is refused (a lock), and an existing
MP4 is replaced only with --overwrite, as an earlier run's PNG folder is refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from fifo_core.errors import SinkError
from fifo_core.sink import SinkSettings
from fifo_sinks import ImageSequenceSink, Mp4Sink

FIFO = [sys.executable, "-m", "fifo_core.cli", "generate", "a red circle", "--backbone", "gaussian-ar1", "-q"]


def test_an_existing_mp4_is_refused_with_the_fix(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    video.write_bytes(b"an earlier video")
    with pytest.raises(SinkError, match="--overwrite"):
        Mp4Sink.check_target(str(video), SinkSettings())
    Mp4Sink.check_target(str(video), SinkSettings(overwrite=True))
    assert video.read_bytes() == b"an earlier video"


@pytest.mark.parametrize("sink_class", [Mp4Sink, ImageSequenceSink], ids=["mp4", "images"])
def test_a_target_held_by_another_sink_is_refused(tmp_path: Path, sink_class) -> None:
    target = str(tmp_path / ("out.mp4" if sink_class is Mp4Sink else "frames/"))
    settings = SinkSettings(overwrite=True)
    first = sink_class(target, settings)
    first.reserve()
    try:
        second = sink_class(target, settings)
        with pytest.raises(SinkError, match="another run"):
            second.reserve()
        with pytest.raises(SinkError, match="another run"):
            sink_class.check_target(target, settings)
    finally:
        first.close()
    third = sink_class(target, settings)  # free again once the first has closed
    third.reserve()
    third.close()


def test_a_reserved_target_that_got_no_frame_leaves_nothing_behind(tmp_path: Path) -> None:
    for target in (tmp_path / "out.mp4", tmp_path / "frames"):
        sink = (Mp4Sink if target.suffix else ImageSequenceSink)(str(target), SinkSettings())
        sink.reserve()
        sink.close()
        assert not target.exists()


@pytest.mark.timeout(120)
def test_the_command_line_refuses_an_existing_mp4_and_replaces_it_with_overwrite(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    video.write_bytes(b"an earlier video")
    refused = subprocess.run([*FIFO, "--frames", "3", "--sink", str(video)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert video.read_bytes() == b"an earlier video"
    replaced = subprocess.run([*FIFO, "--frames", "3", "--overwrite", "--sink", str(video)], capture_output=True, text=True, timeout=60)
    assert replaced.returncode == 0, replaced.stderr
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("target", ["out.mp4", "frames/"])
def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(tmp_path: Path, target: str) -> None:
    output = tmp_path / target
    first = subprocess.Popen([*FIFO, "--sink", str(output)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (output.is_file() and output.stat().st_size > 2000 or output.is_dir() and any(output.glob("*.png"))):
            time.sleep(0.1)
        second = subprocess.run([*FIFO, "--frames", "3", "--overwrite", "--sink", str(output)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "another run" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    if output.suffix == ".mp4":
        frames = imageio_ffmpeg.count_frames_and_secs(str(output))[0]
        assert frames > 3
    else:
        names = sorted(path.name for path in output.glob("*.png"))
        assert names == [f"frame_{index:06d}.png" for index in range(len(names))]
