"""A tiny VideoCrafter2-layout checkpoint, written the way ``model.ckpt`` is (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fifo_videocrafter.config import TINY_VIDEOCRAFTER2

from .seeded import write_tiny_checkpoint

VIDEO = (16, 16)  # the tiny VAE halves each side: latents 4 x 8 x 8


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(model.ckpt, architecture.json)`` of the tiny VideoCrafter2 layout."""
    folder = tmp_path_factory.mktemp("videocrafter2-tiny")
    checkpoint = write_tiny_checkpoint(TINY_VIDEOCRAFTER2, folder / "model.ckpt", seed=0)
    architecture = folder / "architecture.json"
    architecture.write_text(TINY_VIDEOCRAFTER2.model_dump_json(indent=2))
    return checkpoint, architecture


@pytest.fixture(scope="session")
def tiny_options(tiny_files: tuple[Path, Path]) -> dict[str, str]:
    checkpoint, architecture = tiny_files
    return {"checkpoint": str(checkpoint), "architecture": str(architecture), "device": "cpu"}
