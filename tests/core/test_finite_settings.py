"""Issue #13, item 10: non-finite and absurd numbers are refused with the field and the fix, from
Python, from a JSON config file and from the command line (they once made an all-black video)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fifo_core.config import RunConfig
from fifo_core.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guidance_scale", float("inf")),
        ("guidance_scale", 1e308),
        ("guidance_scale", float("nan")),
        ("eta", float("inf")),
        ("eta", 1e308),
        ("eta", 1.5),
        ("start_guidance_scale", float("inf")),
        ("fps", float("inf")),
        ("fps", 1e308),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as raised:
        RunConfig.parse({"prompt": "x", field: value})
    assert raised.value.field == field
    assert "pass" in str(raised.value)  # says how to fix it


def test_json_infinity_in_a_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text('{"prompt": "x", "guidance_scale": Infinity}')
    with pytest.raises(ConfigError) as raised:
        RunConfig.from_file(config)
    assert raised.value.field in ("guidance_scale", "config")


@pytest.mark.parametrize("flags", [["--guidance", "inf"], ["--eta", "inf"], ["--guidance", "1e308"]])
def test_the_command_line_refuses_them_in_one_line_with_status_2(tmp_path: Path, flags: list[str]) -> None:
    video = tmp_path / "out.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "a red circle", "--backbone", "gaussian-ar1", "--frames", "3", *flags, "--sink", str(video)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert not video.exists()


def test_reasonable_values_still_pass() -> None:
    RunConfig.parse({"prompt": "x", "guidance_scale": 30.0, "eta": 1.0, "fps": 60.0, "start_guidance_scale": 7.5})
