"""A tiny Open-Sora Plan v1.1 in the released folder layout (seeded random weights), written once per
session, so the backbone is tested through the same loading code as the real checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from fifo_opensora.random_models import write_released_layout  # noqa: E402


@pytest.fixture(scope="session")
def released_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_released_layout(tmp_path_factory.mktemp("open-sora-plan-tiny"), "tiny", "65x512x512", seed=0)


@pytest.fixture(scope="session")
def opensora_options(released_folder: Path) -> dict:
    return {"model": str(released_folder), "text_encoder": str(released_folder / "t5"), "device": "cpu"}
