"""What every built-in sink shares: a validating ``write``, and ``check_target`` errors that
explain themselves and create nothing; plus how targets are routed to sinks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fifo_core.errors import ConfigError, SinkError
from fifo_core.plugins import Plugins
from fifo_core.sink import Sink, SinkSettings
from fifo_sinks import ImageSequenceSink, Mp4Sink, RtmpSink, plugin
from fifo_sinks.rtmp import redact_stream_key

SETTINGS = SinkSettings(fps=8)


def built_in_sinks(tmp_path: Path) -> list[Sink]:
    # Port 9 (discard) on loopback: the RTMP sink never connects, since each test below fails
    # validation before the first frame would open a stream.
    return [
        Mp4Sink(str(tmp_path / "video.mp4"), SETTINGS),
        ImageSequenceSink(str(tmp_path / "frames"), SETTINGS),
        RtmpSink("rtmp://127.0.0.1:9/live/key", SETTINGS),
    ]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 3), np.uint16), "uint8"),
        (np.zeros((8, 8), np.uint8), "(height, width, 3)"),
        (np.zeros((8, 8, 4), np.uint8), "(height, width, 3)"),
        (np.zeros((1, 8, 8, 3), np.uint8), "(height, width, 3)"),
        ([[[0, 0, 0]]], "numpy array"),
    ],
    ids=["float32", "uint16", "grey", "rgba", "batch", "list"],
)
def test_write_rejects_a_wrong_frame_and_names_the_fix(tmp_path: Path, frame, expected: str) -> None:
    for sink in built_in_sinks(tmp_path):
        with pytest.raises(SinkError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            sink.write(frame)
        assert sink.frames_written == 0
        sink.close()
    assert list(tmp_path.iterdir()) == [], "a rejected frame must not start any output"


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    for sink in built_in_sinks(tmp_path):
        sink.close()
        sink.close()  # twice is fine
        with pytest.raises(SinkError, match="closed"):
            sink.write(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("sink_class", [Mp4Sink, ImageSequenceSink], ids=["mp4", "images"])
def test_a_frame_of_another_size_is_refused_and_the_earlier_frames_are_kept(tmp_path: Path, sink_class) -> None:
    target = str(tmp_path / ("video.mp4" if sink_class is Mp4Sink else "frames"))
    with sink_class(target, SETTINGS) as sink:
        sink.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(SinkError, match=r"same size"):
            sink.write(np.zeros((16, 18, 3), np.uint8))
        sink.write(np.zeros((16, 16, 3), np.uint8))
    assert sink.frames_written == 2


# -- check_target --------------------------------------------------------------------------


def assert_refused_and_nothing_created(sink_class, target: str, root: Path, *fragments: str) -> None:
    before = sorted(root.rglob("*"))
    with pytest.raises(SinkError) as raised:
        sink_class.check_target(target, SETTINGS)
    for fragment in fragments:
        assert fragment in str(raised.value)
    assert sorted(root.rglob("*")) == before


def test_mp4_target_errors(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    Mp4Sink.check_target(str(tmp_path / "missing" / "v.mp4"), SETTINGS)  # a missing folder is created at the first frame
    assert not (tmp_path / "missing").exists()
    assert_refused_and_nothing_created(Mp4Sink, str(tmp_path / "a-file" / "v.mp4"), tmp_path, "is a file")
    assert_refused_and_nothing_created(Mp4Sink, str(tmp_path / "a-folder"), tmp_path, "is a directory", "video.mp4")
    with pytest.raises(SinkError, match="frame rate above 0"):
        Mp4Sink.check_target(str(tmp_path / "v.mp4"), SinkSettings(fps=0))
    Mp4Sink.check_target(str(tmp_path / "v.mp4"), SETTINGS)
    assert not (tmp_path / "v.mp4").exists()


def test_mp4_and_images_refuse_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root may write anywhere, so the permission check is made to see what any other user would
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    try:
        assert_refused_and_nothing_created(Mp4Sink, str(locked / "v.mp4"), tmp_path, "not writable", "permissions")
        assert_refused_and_nothing_created(ImageSequenceSink, str(locked / "frames/"), tmp_path, "not writable")
    finally:
        monkeypatch.undo()
        locked.chmod(0o700)


def test_images_target_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    earlier_run = tmp_path / "earlier"
    earlier_run.mkdir()
    (earlier_run / "frame_000000.png").write_bytes(b"")
    assert_refused_and_nothing_created(ImageSequenceSink, str(tmp_path / "a-file"), tmp_path, "is a file")
    assert_refused_and_nothing_created(ImageSequenceSink, str(tmp_path / "a-file" / "frames/"), tmp_path, "is a file")
    assert_refused_and_nothing_created(ImageSequenceSink, f"{earlier_run}/", tmp_path, "earlier run", "new folder")
    # a fresh folder, even nested, is fine; it is created at the first frame, not now
    ImageSequenceSink.check_target(str(tmp_path / "new" / "nested/"), SETTINGS)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    ImageSequenceSink.check_target(str(tmp_path / "empty"), SETTINGS)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rtmp:/127.0.0.1/live/key", "'//'"),
        ("rtmp:///live/key", "no host"),
        ("rtmp://bad_host!/live/key", "not a valid host"),
        ("rtmp://[::zz]/live/key", "IPv6"),
        ("rtmp://[fe80::1%zz/live/key", "cannot be parsed"),
        ("rtmp://127.0.0.1:0/live/key", "port"),
        ("rtmp://127.0.0.1:65536/live/key", "port"),
        ("rtmp://127.0.0.1:http/live/key", "port"),
        ("rtmp://127.0.0.1", "application and a stream key"),
        ("rtmp://127.0.0.1/live", "application and a stream key"),
        ("rtmp://127.0.0.1/live/", "application and a stream key"),
        ("rtmp://127.0.0.1//key", "application and a stream key"),
        ("rtmp://127.0.0.1/live/my key", "white space"),
        ("rtmpx://127.0.0.1/live/key", "not rtmp or rtmps"),
    ],
)
def test_rtmp_target_rejects_a_malformed_url_before_any_network(tmp_path: Path, url: str, problem: str) -> None:
    assert_refused_and_nothing_created(RtmpSink, url, tmp_path, problem, "rtmp://host[:port]/application/stream-key")


@pytest.mark.parametrize(
    "url",
    [
        "rtmp://127.0.0.1/live/key",
        "rtmp://localhost:1935/live/key",
        "RTMP://Example.com/live/key",
        "rtmps://live.example.com:443/app/key-with-dashes_1?token=abc",
        "rtmp://[::1]:1935/live/key",
        "rtmp://user:secret@example.com/live/key",
        "rtmp://example.com/app/instance/key",
    ],
)
def test_rtmp_target_accepts_well_formed_urls(url: str) -> None:
    RtmpSink.check_target(url, SETTINGS)


def test_rtmp_errors_do_not_show_the_stream_key() -> None:
    with pytest.raises(SinkError) as raised:
        RtmpSink.check_target("rtmp://127.0.0.1:0/live/very-secret-key", SETTINGS)
    assert "very-secret-key" not in str(raised.value)
    assert redact_stream_key("rtmp://user:pw@example.com/live/very-secret-key") == "rtmp://example.com/live/***"


# -- routing targets to sinks ---------------------------------------------------------------


def test_built_in_sinks_register_in_order_through_the_hook() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="sinks")
    assert [spec.name for spec in plugins.sinks()] == ["rtmp", "mp4", "images"]
    assert [spec.sink_class for spec in plugins.sinks()] == [RtmpSink, Mp4Sink, ImageSequenceSink]
    assert all(spec.description for spec in plugins.sinks())


def test_built_in_sinks_come_through_the_entry_point() -> None:
    specs = {spec.name: spec for spec in Plugins().sinks()}
    assert {"rtmp", "mp4", "images"} <= set(specs)
    assert specs["mp4"].plugin == "sinks"


@pytest.mark.parametrize(
    ("target", "sink"),
    [
        ("rtmp://127.0.0.1/live/key", "rtmp"),
        ("rtmps://example.com/live/key", "rtmp"),
        ("RTMP://example.com/live/key", "rtmp"),
        ("rtmp:/typo/live/key", "rtmp"),  # malformed, but rtmp's check_target explains why
        ("out.mp4", "mp4"),
        ("runs/Out.MP4", "mp4"),
        ("frames/", "images"),
        ("frames", "images"),
        ("runs/2024.frames/", "images"),
    ],
)
def test_targets_go_to_the_right_sink(target: str, sink: str) -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="sinks")
    assert plugins.sink_for(target).name == sink


def test_an_existing_folder_with_a_dot_goes_to_the_images_sink(tmp_path: Path) -> None:
    folder = tmp_path / "run.v2"
    folder.mkdir()
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="sinks")
    assert plugins.sink_for(str(folder)).name == "images"


@pytest.mark.parametrize("target", ["out.avi", "http://example.com/live/key", "srt://example.com:9000", "", " "])
def test_a_target_no_sink_takes_is_a_config_error_listing_the_sinks(target: str) -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="sinks")
    with pytest.raises(ConfigError, match="no sink accepts") as raised:
        plugins.sink_for(target)
    assert all(name in str(raised.value) for name in ("rtmp", "mp4", "images"))
