"""The PNG sequence sink: lossless numbered frames, no half-written files, no mixing of runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fifo_core.errors import SinkError
from fifo_core.sink import SinkSettings
from fifo_sinks import ImageSequenceSink

from .coded_frames import coded_frame


def test_frames_are_numbered_pngs_equal_to_what_was_written(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "frames"  # parents are created too, at the first frame
    with ImageSequenceSink(f"{folder}/", SinkSettings(fps=8)) as sink:
        assert not folder.exists()
        for index in range(12):
            sink.write(coded_frame(index))
    names = sorted(path.name for path in folder.iterdir())
    assert names == [f"frame_{index:06d}.png" for index in range(12)], "no temporary files are left"
    for index, name in enumerate(names):
        with Image.open(folder / name) as image:
            assert image.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(image), coded_frame(index))


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    folder = str(tmp_path / "frames")
    ImageSequenceSink.check_target(folder, SinkSettings())
    with ImageSequenceSink(folder, SinkSettings()) as sink:
        sink.write(coded_frame(0))
    try:
        ImageSequenceSink.check_target(folder, SinkSettings())
    except SinkError as error:
        assert "new folder" in str(error)
    else:
        raise AssertionError("a folder holding frames of an earlier run was accepted")


def test_no_frame_means_no_folder(tmp_path: Path) -> None:
    ImageSequenceSink(str(tmp_path / "frames"), SinkSettings()).close()
    assert not (tmp_path / "frames").exists()
