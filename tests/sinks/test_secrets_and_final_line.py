"""Issue #13, items 8 and 13: RTMP stream keys and passwords never reach the terminal in clear,
and the last line names only the sinks that really hold the video."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fifo_core.config import RunConfig
from fifo_core.errors import ConfigError
from .servers import free_port

FIFO = [sys.executable, "-m", "fifo_core.cli"]
SECRETS = ("s3cret-key", "hunter2")


def stream_url() -> str:
    return f"rtmp://alice:hunter2@127.0.0.1:{free_port()}/live/s3cret-key"  # nothing listens there


@pytest.mark.timeout(120)
def test_a_failed_stream_is_redacted_everywhere_and_left_out_of_the_final_line(tmp_path: Path) -> None:
    video = tmp_path / "out.mp4"
    result = subprocess.run(
        [*FIFO, "generate", "a red circle", "--backbone", "gaussian-ar1", "--frames", "4", "-q",
         "--sink", str(video), "--sink", stream_url()],
        capture_output=True, text=True, timeout=100,
    )
    assert result.returncode == 1, result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr
    assert "rtmp://127.0.0.1" in result.stderr and "/live/***" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"wrote 4 frames to {video}") and "rtmp" not in last.split(";")[0], last
    assert "failed" in last


def test_a_stream_given_twice_is_redacted_in_the_error() -> None:
    url = stream_url()
    with pytest.raises(ConfigError) as raised:
        RunConfig.parse({"prompt": "x", "sinks": [url, url]})
    for secret in SECRETS:
        assert secret not in str(raised.value)
    assert "given twice" in str(raised.value)
