"""Issue #18: state files are written atomically, loaded without running code, and a state that
does not fit (another version, another backbone, settings changed) is refused with one line that
says what was wrong and how to fix it; the CLI refuses before creating anything."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fifo_core.state
from fifo_core.api import RunConfig, generate, load_backbone, resume
from fifo_core.cli import main
from fifo_core.errors import ConfigError
from fifo_core.state import STATE_FILE, load_state, save_state

from .helpers import CLI, environment

SETTINGS = {"prompt": "x", "backbone": "gaussian-ar1", "window": 4, "partitions": 2, "seed": 5}


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    generate(RunConfig(**SETTINGS, frames=8, sinks=[f"{tmp_path}/frames/"]), state_dir=tmp_path / "state", save_every=4)
    return tmp_path / "state"


def test_a_crash_while_saving_leaves_the_previous_state_usable(saved_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = load_state(saved_run)
    newer = load_state(saved_run)
    newer.frames = 99

    def crash(path, data) -> None:  # the process dies halfway through writing the new file
        Path(path).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(fifo_core.state, "_write_durably", crash)
    with pytest.raises(KeyboardInterrupt):
        save_state(saved_run, newer)
    assert list(saved_run.glob(".*.partial"))  # the half-written file is there, under another name
    after = load_state(saved_run)
    assert after.frames == before.frames == 8
    assert torch.equal(after.position.queue.latents, before.position.queue.latents)
    monkeypatch.undo()
    save_state(saved_run, newer)  # the next save replaces the state as usual
    assert load_state(saved_run).frames == 99


def test_the_state_holds_no_pickle_and_loads_with_safetensors_alone(saved_run: Path) -> None:
    from safetensors import safe_open

    data = (saved_run / STATE_FILE).read_bytes()
    assert b"\x80\x04\x95" not in data[:64]  # not a pickle stream
    with safe_open(str(saved_run / STATE_FILE), framework="pt") as handle:
        values = json.loads(handle.metadata()["fifo_diffusion_state"])
        assert {"queue.latents", "queue.levels", "queue.frame_ids"} <= set(handle.keys())
    assert values["backbone"] == "gaussian-ar1" and values["frames"] == 8


def test_a_state_of_another_version_is_refused(saved_run: Path) -> None:
    state = load_state(saved_run)
    state.version = "0.0.1"
    save_state(saved_run, state)
    with pytest.raises(ConfigError, match=r"saved by fifo-diffusion 0\.0\.1.*this is fifo-diffusion .*pip install fifo-diffusion==0\.0\.1"):
        resume(saved_run, frames=12)


def test_a_state_resumed_with_another_backbone_is_refused(saved_run: Path) -> None:
    other = load_backbone("gaussian-ar1", {"channels": 4})  # another latent shape under the same name
    with pytest.raises(ConfigError, match="does not match the one that saved the run.*latent shape"):
        resume(saved_run, frames=12, backbone=other)
    state = load_state(saved_run)
    state.backbone = "fifo-shapes"
    save_state(saved_run, state)
    with pytest.raises(ConfigError, match="backbone 'fifo-shapes' as loaded now does not match"):
        resume(saved_run, frames=12)


def test_settings_of_a_resumed_run_may_not_change(saved_run: Path) -> None:
    with pytest.raises(ConfigError, match="only device, dtype, vae_dtype, threads, compile, fp8, channels_last may change, got rho"):
        resume(saved_run, backbone_options={"rho": 0.9})
    with pytest.raises(ConfigError, match="has made 8 frames already.*more than 8"):
        resume(saved_run, frames=8)


def test_the_cli_refuses_a_used_state_folder_and_a_missing_state_creating_nothing(saved_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "x", "-b", "gaussian", "--sink", str(tmp_path / "new.mp4"), "--state", str(saved_run)])
    assert result.exit_code == 2
    assert "already holds the state of a run; continue it with `fifo-diffusion resume" in result.output
    assert not (tmp_path / "new.mp4").exists()
    result = CliRunner().invoke(main, ["resume", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "holds no saved run" in result.output
    assert not (tmp_path / "nothing").exists()


def test_a_state_file_that_is_damaged_is_named(saved_run: Path) -> None:
    path = saved_run / STATE_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="is not a readable fifo-diffusion state.*start the run again"):
        load_state(saved_run)


@pytest.mark.timeout(60)
def test_ctrl_c_saves_the_state_and_the_cli_says_how_to_resume(tmp_path: Path) -> None:
    import signal
    import time

    state = tmp_path / "state"
    process = subprocess.Popen(
        [*CLI, "generate", "a red circle", "-b", "gaussian", "--sink", f"{tmp_path}/frames/", "--state", str(state), "-q"],
        env=environment(), stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 40
    while len(list((tmp_path / "frames").glob("*.png"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert f"continue with `fifo-diffusion resume {state}`" in stderr
    assert load_state(state).sinks[0].frames == len(list((tmp_path / "frames").glob("*.png")))


def test_resuming_a_finished_run_asks_for_a_length(saved_run: Path) -> None:
    with pytest.raises(ConfigError, match="the saved run is complete: it made the 8 frames.*--frames"):
        resume(saved_run)


def test_a_resume_into_a_new_output_gets_the_frames_from_the_resume_point(saved_run: Path, tmp_path: Path) -> None:
    summary = resume(saved_run, frames=14, sinks=[f"{tmp_path}/rest/"])
    assert summary.frames == 6 and len(list((tmp_path / "rest").glob("frame_*.png"))) == 6
    assert [sink.target for sink in load_state(saved_run).sinks] == [f"{tmp_path}/rest/"]
    assert load_state(saved_run).sinks[0].frames == 6
