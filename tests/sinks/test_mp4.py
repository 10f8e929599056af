"""The MP4 sink: every frame lands, at the right frame rate, and an interrupted run still leaves
a playable file holding every frame written before the interruption."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from fifo_core.errors import SinkError
from fifo_core.sink import SinkSettings
from fifo_sinks import Mp4Sink

from .coded_frames import HEIGHT, WIDTH, coded_frame, mean_abs_error, read_index

HERE = Path(__file__).resolve().parent


def read_back(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]
    return meta, frames


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fps", [12.0, 23.976])
def test_every_frame_is_written_in_order_at_the_frame_rate(tmp_path: Path, fps: float) -> None:
    target = tmp_path / "video.mp4"
    frames = 30
    with Mp4Sink(str(target), SinkSettings(fps=fps)) as sink:
        for index in range(frames):
            sink.write(coded_frame(index))
    assert sink.frames_written == frames
    count, seconds = imageio_ffmpeg.count_frames_and_secs(str(target))
    assert count == frames
    assert seconds == pytest.approx(frames / fps, abs=0.01)
    meta, decoded = read_back(target)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == pytest.approx(fps, abs=0.01)
    assert [read_index(frame) for frame in decoded] == list(range(frames))
    assert max(mean_abs_error(frame, coded_frame(index)) for index, frame in enumerate(decoded)) < 4.0


@pytest.mark.timeout(60)
def test_odd_sizes_are_padded_with_one_black_row_and_column(tmp_path: Path) -> None:
    target = tmp_path / "odd.mp4"
    with Mp4Sink(str(target), SinkSettings(fps=8)) as sink:
        for index in range(5):
            sink.write(coded_frame(index, height=HEIGHT - 1, width=WIDTH - 1))
    meta, decoded = read_back(target)
    assert meta["size"] == (WIDTH, HEIGHT)
    assert len(decoded) == 5
    picture = decoded[0][: HEIGHT - 1, : WIDTH - 1]
    assert mean_abs_error(picture, coded_frame(0, height=HEIGHT - 1, width=WIDTH - 1)) < 4.0
    assert decoded[0][-1].mean() < 20 and decoded[0][:, -1].mean() < 20  # the padding is black


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["take:2.mp4", "-dash.mp4"])
def test_names_ffmpeg_would_misread_are_plain_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    with Mp4Sink(name, SinkSettings(fps=8)) as sink:
        sink.write(coded_frame(0))
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / name))[0] == 1


def test_no_frame_means_no_file(tmp_path: Path) -> None:
    target = tmp_path / "never.mp4"
    Mp4Sink(str(target), SinkSettings(fps=8)).close()
    assert not target.exists()


@pytest.mark.timeout(60)
def test_encoder_killed_outright_leaves_a_playable_file_and_close_reports_it(tmp_path: Path) -> None:
    """Fragmented MP4: what ffmpeg wrote before it died can be played, cut at a keyframe."""
    target = tmp_path / "killed.mp4"
    sink = Mp4Sink(str(target), SinkSettings(fps=12))  # a keyframe, so a fragment, every 12 frames
    for index in range(60):
        sink.write(coded_frame(index))
    time.sleep(1.0)  # let ffmpeg encode what is in its pipe and write the fragments
    os.kill(sink.encoder_pid, signal.SIGKILL)
    with pytest.raises(SinkError, match=r"exit status -9") as raised:
        sink.close()
    assert "60 frames were sent" in str(raised.value)
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(target))
    assert count >= 24, "at least the fragments before the encoder's lookahead were written"
    _, decoded = read_back(target)
    assert [read_index(frame) for frame in decoded] == list(range(count))


@pytest.mark.timeout(60)
def test_ffmpeg_failing_is_a_sink_error_with_what_ffmpeg_said(tmp_path: Path) -> None:
    class BadPreset(Mp4Sink):
        preset = "no-such-preset"

    sink = BadPreset(str(tmp_path / "bad.mp4"), SinkSettings(fps=8))
    with pytest.raises(SinkError, match="ffmpeg") as raised:
        for index in range(200):  # ffmpeg gives up on the preset at once; a write or close notices
            sink.write(coded_frame(index))
        sink.close()
    assert "preset" in str(raised.value).lower()
    sink.close()


# -- interrupting a process that writes an MP4 -----------------------------------------------

WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
from coded_frames import coded_frame
from fifo_core.sink import SinkSettings
from fifo_sinks import Mp4Sink

with Mp4Sink(sys.argv[1], SinkSettings(fps=12)) as sink:
    index = 0
    while True:
        sink.write(coded_frame(index))
        index += 1
        if index == 1:
            print("encoder", sink.encoder_pid, flush=True)
        print("wrote", index, flush=True)
        time.sleep(0.005)
"""


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has finished
    except FileNotFoundError:
        return True


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_writer_leaves_every_written_frame_playable(tmp_path: Path, signal_number: int) -> None:
    """SIGINT goes to the writer's whole process group, as Ctrl-C in a terminal does; the encoder
    runs in its own session, so it finishes the file once the writer is gone."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(HERE)))
    target = tmp_path / "interrupted.mp4"
    writer = subprocess.Popen(
        [sys.executable, str(script), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a foreground job in a terminal
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in writer.stdout], daemon=True).start()
    encoder_pid = None
    reported = 0
    try:
        deadline = time.monotonic() + 30
        while reported < 40:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            word, number = line.split()
            if word == "encoder":
                encoder_pid = int(number)
            else:
                reported = int(number)
        os.killpg(writer.pid, signal_number)
        writer.wait(timeout=30)
        while True:  # the lines printed before the signal landed
            try:
                word, number = lines.get(timeout=1).split()
                reported = int(number)
            except queue.Empty:
                break
        deadline = time.monotonic() + 30
        while not process_gone(encoder_pid):
            assert time.monotonic() < deadline, "ffmpeg did not finish the file after the writer was gone"
            time.sleep(0.05)
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        if encoder_pid is not None and not process_gone(encoder_pid):
            os.kill(encoder_pid, signal.SIGKILL)
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(target))
    # the frame being written when the signal came may have been finished before it took effect
    assert reported <= count <= reported + 1, writer.stderr.read()[-2000:]
    _, decoded = read_back(target)
    assert [read_index(frame) for frame in decoded] == [index % 256 for index in range(count)]
