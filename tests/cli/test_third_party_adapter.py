"""A third-party adapter, installed as its own distribution, is found through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fifo_core.plugins

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fifo-example-adapter"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def cli_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(fifo_core.plugins.PLUGINS_ENV, None)  # load every installed plugin, as a user's machine would
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def test_installed_example_is_listed_and_generates(installed_example: Path, tmp_path: Path) -> None:
    env = cli_env(installed_example)
    listing = subprocess.run([sys.executable, "-m", "fifo_core.cli", "backbones"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "example-white-noise" in listing.stdout
    assert "[example]" in listing.stdout  # registered by the example's own entry point
    run = subprocess.run(
        [sys.executable, "-m", "fifo_core.cli", "generate", "anything", "--backbone", "example-white-noise",
         "--frames", "10", "--sink", f"{tmp_path}/frames/", "-q"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "frames").glob("*.png"))) == 10


def test_example_is_not_loaded_when_plugins_are_restricted(installed_example: Path) -> None:
    env = cli_env(installed_example)
    env[fifo_core.plugins.PLUGINS_ENV] = "gaussian"
    listing = subprocess.run([sys.executable, "-m", "fifo_core.cli", "backbones"], env=env, capture_output=True, text=True, timeout=120)
    assert "example-white-noise" not in listing.stdout


def test_the_example_passes_the_public_conformance_checks(installed_example: Path) -> None:
    env = cli_env(installed_example)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=env, capture_output=True, text=True, timeout=300, cwd=EXAMPLE,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed, 2 skipped" in run.stdout  # skipped: text (it ignores it) and encode (it has none)
