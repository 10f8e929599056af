"""What pyproject.toml promises about the packages it pulls in."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def torch_floor() -> tuple[int, ...]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [dependency for dependency in dependencies if re.match(r"torch\b", dependency)]
    floor = re.search(r">=\s*([0-9.]+)", torch)
    assert floor is not None, f"torch has no lower bound in {torch!r}"
    return tuple(int(part) for part in floor.group(1).split("."))


def test_torch_floor_excludes_releases_whose_weights_only_loading_is_bypassable() -> None:
    # CVE-2025-32434: torch.load(weights_only=True) could still run code in releases before 2.6;
    # every checkpoint loader here relies on weights_only=True.
    assert torch_floor() >= (2, 6)
