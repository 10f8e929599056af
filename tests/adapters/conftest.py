"""Tiny seeded diffusers models, saved as pipeline folders once per session.

Every parameter is filled with seeded random values (tiny models have zero-initialised output
layers that would hide any difference), then each model is written with ``save_pretrained`` so the
adapters load it through their real ``from_pretrained`` path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from fifo_diffusers.random_models import (  # noqa: E402
    animatediff_components,
    latte_components,
    ltx_components,
    save_pipeline,
    unet3d_components,
    wan_components,
)


@pytest.fixture(scope="session")
def unet3d_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(unet3d_components("tiny", seed=0), tmp_path_factory.mktemp("zeroscope-tiny"))


@pytest.fixture(scope="session")
def wan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(wan_components("tiny", seed=0), tmp_path_factory.mktemp("wan-tiny"))


@pytest.fixture(scope="session")
def animatediff_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SD 1.5-style pipeline folder with the motion adapter in a ``motion_adapter`` subfolder."""
    return save_pipeline(animatediff_components("tiny", seed=0), tmp_path_factory.mktemp("animatediff-tiny"))


@pytest.fixture(scope="session")
def latte_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(latte_components("tiny", seed=0), tmp_path_factory.mktemp("latte-tiny"))


@pytest.fixture(scope="session")
def ltx_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pipeline(ltx_components("tiny", seed=0), tmp_path_factory.mktemp("ltx-tiny"))
