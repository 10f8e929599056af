"""The plugin manager: registration in tests without installing anything, isolation of broken
plugins, entry-point selection and errors that teach."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import pytest

import fifo_core.plugins
from fifo_core.errors import ConfigError, PluginError
from fifo_core.plugins import ENTRY_POINT_GROUP, PLUGINS_ENV, Plugins, hookimpl, selected_entry_point_names
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone


class BackbonePlugin:
    """Registers the given backbone names (all the Gaussian backbone underneath)."""

    def __init__(self, *names: str, aliases: tuple[str, ...] = ()) -> None:
        self.names = names
        self.aliases = aliases

    @hookimpl
    def register_backbones(self, register):
        for name in self.names:
            register(name, GaussianAR1Backbone, defaults=DEFAULTS, aliases=self.aliases, description=f"{name} for tests")


class BrokenPlugin:
    @hookimpl
    def register_backbones(self, register):
        raise RuntimeError("the weights server is down")


def module_plugin(name: str, *backbones: str) -> types.ModuleType:
    """A plugin shaped like a real one: a module with a hookimpl function."""
    module = types.ModuleType(name)

    @hookimpl
    def register_backbones(register):
        for backbone in backbones:
            register(backbone, GaussianAR1Backbone, defaults=DEFAULTS)

    module.register_backbones = register_backbones
    return module


def test_registered_object_and_module_plugins_are_listed_and_created() -> None:
    plugins = Plugins(load_entry_points=False)
    assert plugins.backbones() == {}, "nothing installed is loaded"
    plugins.register(BackbonePlugin("toy", aliases=("toy-alias",)), name="toys")
    plugins.register(module_plugin("more_toys", "other-toy"), name="more")
    assert list(plugins.backbones()) == ["other-toy", "toy"]
    spec = plugins.backbone("toy-alias")
    assert spec.name == "toy" and spec.plugin == "toys"
    assert isinstance(spec.create(), GaussianAR1Backbone)
    assert plugins.backbone("other-toy").plugin == "more"
    assert plugins.failures == []


def test_unregister_removes_a_plugins_backbones() -> None:
    plugins = Plugins(load_entry_points=False)
    plugin = BackbonePlugin("toy")
    plugins.register(plugin, name="toys")
    assert "toy" in plugins.backbones()
    plugins.unregister(plugin)
    assert plugins.backbones() == {}


def test_duplicate_backbone_names_name_both_plugins_and_hide_nothing_else() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(BackbonePlugin("shared", "first-only"), name="first")
    plugins.register(BackbonePlugin("shared", "second-only"), name="second")
    plugins.register(BackbonePlugin("third-only"), name="third")
    backbones = plugins.backbones()
    assert {"shared", "first-only", "third-only"} <= set(backbones)
    assert len(plugins.failures) == 1
    failure = plugins.failures[0]
    assert isinstance(failure.error, PluginError)
    message = str(failure.error)
    assert "'shared'" in message and "'first'" in message and "'second'" in message
    assert "uninstall one" in message or "rename" in message, "says how to fix it"
    assert failure.plugin in {"first", "second"}
    assert failure.plugin in failure.describe()


def test_a_plugin_whose_hook_raises_is_recorded_by_name_and_the_others_still_load() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(BackbonePlugin("before"), name="a-good")
    plugins.register(BrokenPlugin(), name="the-broken-one")
    plugins.register(BackbonePlugin("after"), name="z-good")
    assert set(plugins.backbones()) == {"before", "after"}
    assert [failure.plugin for failure in plugins.failures] == ["the-broken-one"]
    described = plugins.failures[0].describe()
    assert "the-broken-one" in described and "RuntimeError" in described and "weights server is down" in described


def test_report_failures_prints_one_warning_per_failure(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(BrokenPlugin(), name="broken")
    plugins.backbones()
    plugins.report_failures()
    assert capsys.readouterr().err.count("warning: plugin 'broken' was skipped") == 1


def test_a_misspelled_hook_fails_at_register_time() -> None:
    class Misspelled:
        @hookimpl
        def register_backbone(self, register):  # the hook is register_backbones
            pass

    plugins = Plugins(load_entry_points=False)
    plugin = Misspelled()
    with pytest.raises(PluginError) as raised:
        plugins.register(plugin, name="typo")
    message = str(raised.value)
    assert "typo" in message and "register_backbone" in message and "does not exist" in message
    assert "docs/hooks.md" in message, "says where to look up the right names"
    assert not plugins.manager.is_registered(plugin), "a rejected plugin is not left half-registered"


def test_a_hook_with_unknown_arguments_fails_at_register_time() -> None:
    class WrongArguments:
        @hookimpl
        def register_backbones(self, register, something_else):
            pass

    with pytest.raises(PluginError, match="wrong arguments"):
        Plugins(load_entry_points=False).register(WrongArguments(), name="wrong")


# --------------------------------------------------------------------------------------------
# Entry points and FIFO_DIFFUSION_PLUGINS


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("none", set()), ("", set()), ("NONE", set()), ("0", set()), ("a", {"a"}), (" a , b ,", {"a", "b"})],
)
def test_plugin_selection_from_the_environment(monkeypatch: pytest.MonkeyPatch, value, expected) -> None:
    if value is None:
        monkeypatch.delenv(PLUGINS_ENV, raising=False)
    else:
        monkeypatch.setenv(PLUGINS_ENV, value)
    assert selected_entry_point_names() == expected


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    """Three entry points: two importable fake plugin modules and one that fails to import."""
    monkeypatch.setitem(sys.modules, "fake_plugin_alpha", module_plugin("fake_plugin_alpha", "alpha-model"))
    monkeypatch.setitem(sys.modules, "fake_plugin_beta", module_plugin("fake_plugin_beta", "beta-model"))
    points = [
        EntryPoint("alpha", "fake_plugin_alpha", ENTRY_POINT_GROUP),
        EntryPoint("broken", "fake_plugin_that_is_not_installed", ENTRY_POINT_GROUP),
        EntryPoint("beta", "fake_plugin_beta", ENTRY_POINT_GROUP),
    ]
    seen_groups = []

    def entry_points(*, group: str):
        seen_groups.append(group)
        return [point for point in points if point.group == group]

    monkeypatch.setattr(fifo_core.plugins, "entry_points", entry_points)
    return points


def test_an_entry_point_that_fails_to_import_is_reported_and_the_others_load(
    fake_entry_points: list[EntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    plugins = Plugins()
    assert set(plugins.backbones()) == {"alpha-model", "beta-model"}
    assert len(plugins.failures) == 1
    failure = plugins.failures[0]
    assert "broken" in failure.plugin and "fake_plugin_that_is_not_installed" in failure.plugin
    assert isinstance(failure.error, ImportError)


@pytest.mark.parametrize(("selection", "expected"), [("none", set()), ("beta", {"beta-model"}), ("alpha,beta", {"alpha-model", "beta-model"})])
def test_the_environment_chooses_which_entry_points_load(
    fake_entry_points: list[EntryPoint], monkeypatch: pytest.MonkeyPatch, selection: str, expected: set[str]
) -> None:
    monkeypatch.setenv(PLUGINS_ENV, selection)
    plugins = Plugins()
    assert set(plugins.backbones()) == expected
    assert plugins.failures == [], "an unselected broken plugin is never even imported"


def test_the_built_in_gaussian_backbone_registers_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PLUGINS_ENV, "gaussian")
    plugins = Plugins()
    assert list(plugins.backbones()) == ["gaussian-ar1"]
    assert plugins.backbone("gaussian").name == "gaussian-ar1"


def test_an_unknown_backbone_suggests_the_close_name_and_lists_the_installed_ones() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(BackbonePlugin("videocrafter2", "zeroscope"), name="models")
    with pytest.raises(ConfigError) as raised:
        plugins.backbone("videocrafter")
    message = str(raised.value)
    assert raised.value.field == "backbone"
    assert "unknown backbone 'videocrafter'" in message
    assert "did you mean 'videocrafter2'?" in message
    assert "installed backbones: videocrafter2, zeroscope" in message
    assert "fifo-diffusion backbones" in message, "says how to list them"


def test_an_unknown_backbone_with_nothing_installed_says_so() -> None:
    with pytest.raises(ConfigError, match="installed backbones: none"):
        Plugins(load_entry_points=False).backbone("anything")


def test_hookimpl_lives_beside_the_specs_and_the_facade_uses_the_hook_names() -> None:
    import fifo_core.hookspecs

    assert fifo_core.plugins.hookimpl is fifo_core.hookspecs.hookimpl
    facade = {name for name in vars(Plugins) if name.startswith("on_")}
    specs = {name for name in vars(fifo_core.hookspecs) if name.startswith("on_")}
    assert facade == specs == {"on_run_start", "on_iteration", "on_frame", "on_run_end"}
