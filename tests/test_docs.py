"""Documentation stays true to the code: every hook is documented with its exact signature and
exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fifo_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [
    (name, function)
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "fifo_diffusion_spec")
]


def test_there_are_hooks() -> None:
    assert {"register_backbones", "register_sinks", "on_frame"} <= {name for name, _ in HOOKS}


@pytest.mark.parametrize(("name", "function"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_has_a_heading_with_its_exact_signature(name: str, function) -> None:
    arguments = ", ".join(inspect.signature(function).parameters)
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "hooks.md").read_text(), flags=re.MULTILINE)
    assert f"{name}({arguments})" in headings


@pytest.mark.parametrize(("name", "function"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_is_exercised_by_a_test(name: str, function) -> None:
    here = Path(__file__).resolve()
    sources = [path.read_text() for path in (ROOT / "tests").rglob("test_*.py") if path != here]
    assert any(re.search(rf"\bdef {name}\(", source) for source in sources), f"no test implements the {name} hook"
