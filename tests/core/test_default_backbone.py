"""The default backbone is chosen where backbones are registered: a plugin declares it
(``default=True``) and ``FIFO_DIFFUSION_BACKBONE`` overrides; the core names no backbone."""

from __future__ import annotations

import pytest

from fifo_core.api import RunConfig, make_sampler
from fifo_core.errors import ConfigError
from fifo_core.plugins import BACKBONE_ENV, Plugins, hookimpl
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone


class Declares:
    def __init__(self, name: str, default: bool) -> None:
        self.name, self.default = name, default

    @hookimpl
    def register_backbones(self, register):
        register(self.name, GaussianAR1Backbone, defaults=DEFAULTS, default=self.default)


def plugins_with(*plugins: Declares) -> Plugins:
    manager = Plugins(load_entry_points=False)
    for plugin in plugins:
        manager.register(plugin, name=plugin.name)
    return manager


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKBONE_ENV, raising=False)


def test_a_run_without_a_backbone_uses_the_one_a_plugin_declares() -> None:
    plugins = plugins_with(Declares("plain", False), Declares("chosen", True))
    assert plugins.default_backbone() == "chosen"
    assert plugins.backbone(None).name == "chosen"
    assert RunConfig(prompt="x").backbone is None
    sampler = make_sampler(RunConfig(prompt="x", window=2, partitions=1, height=8, width=8), plugins=plugins)
    assert isinstance(sampler.backbone, GaussianAR1Backbone)


def test_the_environment_overrides_the_declared_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKBONE_ENV, "plain")
    assert plugins_with(Declares("plain", False), Declares("chosen", True)).backbone(None).name == "plain"


def test_no_declared_default_and_two_declared_defaults_are_errors_that_teach() -> None:
    with pytest.raises(ConfigError, match="--backbone NAME or set FIFO_DIFFUSION_BACKBONE") as none:
        plugins_with(Declares("plain", False)).default_backbone()
    assert "installed backbones: plain" in str(none.value)
    with pytest.raises(ConfigError, match="several backbones are declared the default") as two:
        plugins_with(Declares("one", True), Declares("two", True)).default_backbone()
    assert "'one' (plugin 'one')" in str(two.value) and two.value.field == "backbone"


def test_the_built_in_default_is_fifo_shapes() -> None:
    from fifo_core.plugins import default_plugins

    assert default_plugins().default_backbone() == "fifo-shapes"
