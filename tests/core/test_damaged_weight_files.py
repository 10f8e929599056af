"""Issue #13, item 12: an empty, random or truncated weights file is named with what is wrong
with it, in one line, and the advice never includes ``weights_only=False``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fifo_core.errors import ConfigError
from fifo_opensora.checkpoint import read_weights
from fifo_videocrafter.checkpoint import read_checkpoint


def good_pickle(path: Path) -> bytes:
    torch.save({"weight": torch.ones(4096)}, path)
    return path.read_bytes()


def damaged(tmp_path: Path, kind: str, name: str = "model.ckpt") -> Path:
    path = tmp_path / name
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(5000))
    elif kind == "truncated":
        data = good_pickle(tmp_path / "whole.ckpt")
        path.write_bytes(data[: len(data) // 2])
    return path


EXPECTED = {"empty": "is empty", "random": "not a PyTorch checkpoint", "truncated": "truncated"}


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
def test_videocrafter_checkpoints_name_the_file_and_the_damage(tmp_path: Path, kind: str) -> None:
    path = damaged(tmp_path, kind)
    with pytest.raises(ConfigError) as raised:
        read_checkpoint(path)
    message = str(raised.value)
    assert str(path) in message and EXPECTED[kind] in message
    assert "weights_only=False" not in message and "\n" not in message


def test_python_objects_are_refused_without_advising_to_unpickle_them(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "extra": Path("x")}, path)
    with pytest.raises(ConfigError) as raised:
        read_checkpoint(path)
    assert "Python objects" in str(raised.value) and "weights_only=False" not in str(raised.value)


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
def test_open_sora_weights_name_the_file_and_the_damage(tmp_path: Path, kind: str) -> None:
    damaged(tmp_path, kind, name="diffusion_pytorch_model.bin")
    with pytest.raises(ConfigError) as raised:
        read_weights(tmp_path, layout="a folder")
    assert "diffusion_pytorch_model.bin" in str(raised.value) and EXPECTED[kind] in str(raised.value)


@pytest.mark.parametrize("kind", ["empty", "random"])
def test_damaged_safetensors_name_the_file(tmp_path: Path, kind: str) -> None:
    path = damaged(tmp_path, kind, name="diffusion_pytorch_model.safetensors")
    with pytest.raises(ConfigError) as raised:
        read_weights(tmp_path, layout="a folder")
    assert str(path) in str(raised.value) and "safetensors" in str(raised.value)


@pytest.mark.timeout(120)
def test_an_empty_checkpoint_on_the_command_line_is_one_line_with_status_2(tmp_path: Path) -> None:
    path = damaged(tmp_path, "empty")
    result = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "a cat", "--backbone", "videocrafter2", "--checkpoint", str(path),
         "--frames", "1", "--sink", str(tmp_path / "out.mp4")],
        capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 2 and "Aborted" not in result.stderr, result.stderr
    assert "is empty" in result.stderr and result.stderr.count("\n") == 1
