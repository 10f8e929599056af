"""Issue #13, items 6 and 7: a plugin that exits on import is skipped and named, whatever it
raises short of Ctrl-C, and a plugin claiming a built-in backbone's name never replaces it."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

import pytest

import fifo_core.plugins
from fifo_core.errors import ConfigError
from fifo_core.plugins import ENTRY_POINT_GROUP, PLUGINS_ENV, Plugins, hookimpl
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone


class ExitingFinder:
    """Makes ``import fake_exiting_plugin`` run ``sys.exit(3)``, as a badly written plugin would."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "fake_exiting_plugin":
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        sys.exit(3)


class Intruder:
    @hookimpl
    def register_backbones(self, register):
        register("fifo-shapes", GaussianAR1Backbone, defaults=DEFAULTS, description="not the real one")
        register("intruder-own", GaussianAR1Backbone, defaults=DEFAULTS)


def built_in(name: str) -> EntryPoint:
    (point,) = [point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name == name]
    return point


@pytest.fixture
def with_entry_points(monkeypatch: pytest.MonkeyPatch):
    def install(*points: EntryPoint) -> None:
        monkeypatch.setattr(fifo_core.plugins, "entry_points", lambda *, group: [p for p in points if p.group == group])
        monkeypatch.delenv(PLUGINS_ENV, raising=False)

    return install


def test_a_plugin_calling_sys_exit_on_import_is_skipped_and_named(with_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", [ExitingFinder(), *sys.meta_path])
    with_entry_points(EntryPoint("exiter", "fake_exiting_plugin", ENTRY_POINT_GROUP), built_in("gaussian"))
    plugins = Plugins()
    assert "gaussian-ar1" in plugins.backbones()
    (failure,) = plugins.failures
    assert "exiter" in failure.describe() and "SystemExit" in failure.describe()


def test_a_hook_calling_sys_exit_is_skipped_and_named() -> None:
    class Exits:
        @hookimpl
        def register_backbones(self, register):
            sys.exit("bye")

    plugins = Plugins(load_entry_points=False)
    plugins.register(Exits(), name="the-exiter")
    assert plugins.backbones() == {}
    assert [failure.plugin for failure in plugins.failures] == ["the-exiter"]


def test_ctrl_c_during_a_hook_is_not_swallowed() -> None:
    class Interrupted:
        @hookimpl
        def register_backbones(self, register):
            raise KeyboardInterrupt

    plugins = Plugins(load_entry_points=False)
    plugins.register(Interrupted(), name="slow")
    with pytest.raises(KeyboardInterrupt):
        plugins.backbones()


def test_the_python_api_names_a_failed_plugin_when_its_backbone_is_missing(with_entry_points, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", [ExitingFinder(), *sys.meta_path])
    with_entry_points(EntryPoint("exiter", "fake_exiting_plugin", ENTRY_POINT_GROUP))
    with pytest.raises(ConfigError) as raised:
        Plugins().backbone("exiter-model")
    assert "exiter" in str(raised.value) and "failed to load" in str(raised.value)


def test_a_third_party_never_replaces_a_built_in_backbone(with_entry_points, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "fake_intruder", Intruder())
    # the intruder comes first, as an entry point may in any installation
    with_entry_points(EntryPoint("intruder", "fake_intruder", ENTRY_POINT_GROUP), built_in("shapes"))
    plugins = Plugins()
    assert plugins.backbone("fifo-shapes").plugin == "shapes"
    assert "intruder-own" in plugins.backbones(), "the rest of the intruder still registers"
    plugins.report_failures()
    warnings = capsys.readouterr().err
    assert "'fifo-shapes'" in warnings and "intruder" in warnings and "built-in" in warnings
