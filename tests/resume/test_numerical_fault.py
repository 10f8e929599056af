"""Issue #18: NaN or infinite values in a model output stop the run, naming the iteration, the
latent frames and their noise levels; the state saved just before resumes (with the cause fixed)
to the frames of a run that never had the fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fifo_core.api import RunConfig, generate, resume
from fifo_core.errors import NumericalError
from fifo_core.plugins import Plugins, default_plugins
from fifo_core.state import load_state

from .helpers import FakeBackbones, PoisonedBackbone, png_frames

SETTINGS = {"prompt": "x", "backbone": "fake-poisoned", "seed": 2, "frames": 20}


def test_a_nan_output_stops_the_run_naming_where_and_the_saved_state_resumes(tmp_path: Path) -> None:
    healthy = Plugins()  # a manager of its own: each registers a different fake under the same name
    healthy.register(FakeBackbones(PoisonedBackbone(poison_call=None)))
    generate(RunConfig(**SETTINGS, sinks=[f"{tmp_path}/whole/"]), plugins=healthy)

    poisoned = PoisonedBackbone(poison_call=12)  # one call per iteration (no guidance): iteration 11
    plugins = Plugins()
    plugins.register(FakeBackbones(poisoned))
    with pytest.raises(NumericalError) as caught:
        generate(RunConfig(**SETTINGS, sinks=[f"{tmp_path}/parts/"]), plugins=plugins, state_dir=tmp_path / "state", save_every=3)
    error = caught.value
    assert error.iteration == 11
    assert len(error.frame_ids) == 1 and len(error.levels) == 1 and error.levels[0] > 0
    message = str(error)
    assert "iteration 11" in message and f"latent frames {error.frame_ids}" in message and f"noise levels {error.levels}" in message
    assert "dtype=float32" in message

    saved = load_state(tmp_path / "state")
    assert saved.position.iteration == 11  # saved just before the faulty iteration: the queue as it went in
    resume(tmp_path / "state", plugins=healthy)
    assert all(np.array_equal(a, b) for a, b in zip(png_frames(tmp_path / "parts"), png_frames(tmp_path / "whole")))
    assert len(png_frames(tmp_path / "parts")) == 20


def test_the_cli_reports_the_fault_in_one_line_and_where_the_state_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = default_plugins()
    plugins.register(FakeBackbones(PoisonedBackbone(poison_call=3)))
    monkeypatch.setattr("fifo_core.cli.default_plugins", lambda: plugins)
    result = CliRunner().invoke(main_command(), ["generate", "x", "-b", "fake-poisoned", "--sink", f"{tmp_path}/f/", "--state", str(tmp_path / "s")])
    assert result.exit_code == 1
    line = [text for text in result.output.splitlines() if text.startswith("error:")][0]
    assert "iteration 2" in line and "resume it with `fifo-diffusion resume" in line


def main_command():
    from fifo_core.cli import main

    return main
