"""Issue #13, item 5 (and the timeline part of 13): ``@file`` prompts read only small regular
files, never echo a file that is not a timeline, and ``@@`` keeps a literal ``@``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fifo_core.config import PromptTimeline
from fifo_core.errors import ConfigError
from fifo_timeline.plugin import MAX_TIMELINE_BYTES, resolve_prompt

FIFO = [sys.executable, "-m", "fifo_core.cli"]


def refusal(prompt: str) -> str:
    with pytest.raises(ConfigError) as raised:
        resolve_prompt(prompt=prompt)
    assert raised.value.field == "prompt"
    return str(raised.value)


@pytest.mark.timeout(20)
def test_a_device_is_refused_without_reading_it() -> None:
    assert "not a regular file" in refusal("@/dev/zero")


def test_a_folder_is_refused(tmp_path: Path) -> None:
    assert "not a regular file" in refusal(f"@{tmp_path}")


def test_a_file_too_large_is_refused_by_size(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("0: a cat\n" + "#" * MAX_TIMELINE_BYTES)
    assert "larger than" in refusal(f"@{big}")


def test_a_file_that_is_no_timeline_is_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n")
    message = refusal(f"@{secret}")
    assert "root" not in message.replace(str(secret), "") and "/bin/bash" not in message
    assert "FRAME: prompt" in message


def test_a_binary_file_is_refused_in_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "noise.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "not UTF-8 text" in refusal(f"@{binary}")


def test_a_bad_line_of_a_real_timeline_is_still_quoted(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("0: a red circle\nlater: a blue square\n")
    assert "'later: a blue square'" in refusal(f"@{story}")


def test_at_at_is_a_literal_prompt_starting_with_at() -> None:
    timeline = resolve_prompt(prompt="@@home a red circle")
    assert isinstance(timeline, PromptTimeline) and timeline.prompts == ["@home a red circle"]


def test_a_timeline_not_starting_at_frame_0_says_so_in_one_teaching_line(tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("10: a red circle\n")
    message = refusal(f"@{story}")
    assert "frame 0" in message and "validation error" not in message and "pydantic" not in message
    assert "add a line" in message


@pytest.mark.timeout(60)
def test_the_command_line_refuses_dev_zero_at_once(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    result = subprocess.run(
        [*FIFO, "generate", "@/dev/zero", "--backbone", "gaussian-ar1", "--frames", "3", "--sink", str(video)],
        capture_output=True, text=True, timeout=50,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert not video.exists()
