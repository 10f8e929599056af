"""Shared test set-up.

* Installed third-party plugins are never auto-loaded: ``FIFO_DIFFUSION_PLUGINS`` selects only this
  distribution's own entry points (the same path a third party's would take), and the cached
  process-wide plugin manager is rebuilt for every test.
* ``@pytest.mark.slow`` tests (full-size models, long runs) run only with ``--run-slow``.
"""

from __future__ import annotations

import pytest

import fifo_core.plugins

BUILT_IN_ENTRY_POINTS = "shapes,gaussian,sinks,timeline,diffusers,videocrafter,opensora"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def only_built_in_plugins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(fifo_core.plugins.PLUGINS_ENV, BUILT_IN_ENTRY_POINTS)
    monkeypatch.setattr(fifo_core.plugins, "_default", None)
    yield
