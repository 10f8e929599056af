"""The plugin manager: entry-point loading, isolation of broken plugins, and a typed facade.

Plugins are found through the ``fifo_diffusion`` entry-point group; the built-in backbones, sinks
and plugins of this distribution are found the same way. The environment variable
``FIFO_DIFFUSION_PLUGINS`` chooses which entry points load: unset loads all of them, ``none``
loads none, and a comma-separated list of entry-point names loads only those (tests use it so an
installed third-party plugin never changes what they see).

A run that names no backbone uses the default one: ``FIFO_DIFFUSION_BACKBONE`` when set, else the
backbone a plugin registers with ``default=True`` (the core itself knows no backbone by name).

Core code calls hooks only through :class:`Plugins`, never through ``pm.hook`` directly; its
methods for the observer hooks carry the hooks' own names (``on_run_start``, ``on_iteration``,
``on_frame``, ``on_run_end``). ``hookimpl`` lives beside the specs in :mod:`fifo_core.hookspecs`
and is importable from here too.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from fifo_core import hookspecs
from fifo_core.backbone import Backbone, BackboneSpec
from fifo_core.config import PromptTimeline, RunConfig
from fifo_core.errors import ConfigError, PluginError
from fifo_core.events import FrameEvent, IterationEvent, RunSummary
from fifo_core.hookspecs import hookimpl
from fifo_core.sink import Sink, SinkSpec

ENTRY_POINT_GROUP = "fifo_diffusion"
DISTRIBUTION = "fifo-diffusion"  # entry points of this distribution are the built-ins
PLUGINS_ENV = "FIFO_DIFFUSION_PLUGINS"
BACKBONE_ENV = "FIFO_DIFFUSION_BACKBONE"
__all__ = ["BACKBONE_ENV", "ENTRY_POINT_GROUP", "PLUGINS_ENV", "PluginFailure", "Plugins", "default_plugins", "hookimpl"]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or could not register; the others still work."""

    plugin: str
    error: BaseException

    def describe(self) -> str:
        return f"plugin {self.plugin!r} was skipped: {type(self.error).__name__}: {self.error}"


def selected_entry_point_names() -> set[str] | None:
    """Entry-point names chosen by ``FIFO_DIFFUSION_PLUGINS``; ``None`` means all."""
    value = os.environ.get(PLUGINS_ENV)
    if value is None:
        return None
    value = value.strip()
    if value.lower() in ("", "none", "0"):
        return set()
    return {name.strip() for name in value.split(",") if name.strip()}


class Plugins:
    """A pluggy manager with the project's hook specs and a typed way to call them."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager("fifo_diffusion")
        self.manager.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.built_in: set[str] = set()
        self._backbones: dict[str, BackboneSpec] | None = None
        self._declared_defaults: list[BackboneSpec] = []
        self._sinks: list[SinkSpec] | None = None
        if load_entry_points:
            self._load_entry_points()
        self.manager.check_pending()

    # -- loading ---------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        chosen = selected_entry_point_names()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if chosen is not None and entry_point.name not in chosen:
                continue
            if self.manager.get_plugin(entry_point.name) is not None:
                continue
            try:
                self.register(entry_point.load(), name=entry_point.name)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # noqa: BLE001 - a broken plugin, even one calling sys.exit(), must not take the others down
                self.failures.append(PluginFailure(f"{entry_point.name} ({entry_point.value})", error))
                continue
            if getattr(entry_point.dist, "name", None) == DISTRIBUTION:
                self.built_in.add(entry_point.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module (tests use this; nothing needs installing)."""
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            raise PluginError(
                f"plugin {name or plugin!r} implements a hook that does not exist or has wrong arguments: {error}. "
                "Check the hook names in docs/hooks.md"
            ) from error
        self._backbones = None
        self._sinks = None

    def unregister(self, plugin: object) -> None:
        self.manager.unregister(plugin)
        self._backbones = None
        self._sinks = None

    def _each_implementation(self, hook_name: str, call: Callable[[Callable[..., Any], str], None]) -> None:
        """Call ``hook_name`` one plugin at a time, so one plugin's failure is recorded with its
        name and does not hide what the others register."""
        for implementation in getattr(self.manager.hook, hook_name).get_hookimpls():
            try:
                call(implementation.function, implementation.plugin_name)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # noqa: BLE001 - as in _load_entry_points
                self.failures.append(PluginFailure(implementation.plugin_name, error))

    # -- backbones -------------------------------------------------------------------------

    def backbones(self) -> dict[str, BackboneSpec]:
        """Every registered backbone by name (aliases not included)."""
        if self._backbones is None:
            found: dict[str, BackboneSpec] = {}
            declared_defaults: list[BackboneSpec] = []

            def collect(function: Callable[..., Any], plugin: str) -> None:
                # hookspecs.RegisterBackbone: BackboneSpec's fields check the other keywords
                def register(name: str, factory: Callable[..., Backbone], *, aliases: Iterable[str] = (), default: bool = False, **spec: Any) -> None:
                    entry = BackboneSpec(name, factory, aliases=tuple(aliases), plugin=plugin, **spec)
                    if default:
                        declared_defaults.append(entry)
                    found[name] = self._settle_name_clash(name, found[name], entry) if name in found else entry

                function(register=register)

            self._each_implementation("register_backbones", collect)
            self._backbones = dict(sorted(found.items()))
            # a default whose name clash was settled against it is no longer registered
            self._declared_defaults = [spec for spec in declared_defaults if found.get(spec.name) is spec]
        return self._backbones

    def _settle_name_clash(self, name: str, earlier: BackboneSpec, later: BackboneSpec) -> BackboneSpec:
        """Which of two backbones registered as ``name`` is kept: a built-in always, else the
        first; the other is recorded as a failure of its plugin (the rest of it still loads)."""
        kept, skipped = (later, earlier) if later.plugin in self.built_in and earlier.plugin not in self.built_in else (earlier, later)
        owner = f"the built-in plugin {kept.plugin!r}" if kept.plugin in self.built_in else repr(kept.plugin)
        self.failures.append(
            PluginFailure(
                skipped.plugin,
                PluginError(
                    f"backbone name {name!r} is registered by both {owner} and {skipped.plugin!r}; "
                    f"{skipped.plugin!r}'s backbone is skipped: rename it in that plugin, or uninstall one of them"
                ),
            )
        )
        return kept

    def default_backbone(self) -> str:
        """The backbone a run that names none uses: ``FIFO_DIFFUSION_BACKBONE`` when set, else the
        one a plugin registered with ``default=True``."""
        chosen = os.environ.get(BACKBONE_ENV, "").strip()
        if chosen:
            return chosen
        self.backbones()
        declared = self._declared_defaults
        if len(declared) == 1:
            return declared[0].name
        if not declared:
            listing = ", ".join(self.backbones()) or "none"
            raise ConfigError(
                f"no backbone was given and no installed plugin declares a default one (installed backbones: {listing}); "
                f"pass --backbone NAME or set {BACKBONE_ENV}",
                field="backbone",
            )
        claims = ", ".join(f"{spec.name!r} (plugin {spec.plugin!r})" for spec in declared)
        raise ConfigError(
            f"several backbones are declared the default: {claims}; pass --backbone NAME or set {BACKBONE_ENV} to choose",
            field="backbone",
        )

    def backbone(self, name: str | None) -> BackboneSpec:
        """The backbone registered as ``name`` or one of its aliases (``None``: the
        :meth:`default_backbone`), or a :class:`ConfigError`."""
        if name is None:
            name = self.default_backbone()
        specs = self.backbones()
        if name in specs:
            return specs[name]
        for spec in specs.values():
            if name in spec.aliases:
                return spec
        known = sorted(list(specs) + [alias for spec in specs.values() for alias in spec.aliases])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listing = ", ".join(sorted(specs)) or "none (is fifo-diffusion installed with its entry points?)"
        broken = sorted({failure.plugin for failure in self.failures})
        failed = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        raise ConfigError(
            f"unknown backbone {name!r}; {hint}installed backbones: {listing}{failed}. "
            "Run `fifo-diffusion backbones` to list them",
            field="backbone",
        )

    # -- sinks -----------------------------------------------------------------------------

    def sinks(self) -> list[SinkSpec]:
        """Every registered sink, in registration order (the first that matches a target wins)."""
        if self._sinks is None:
            found: list[SinkSpec] = []

            def collect(function: Callable[..., Any], plugin: str) -> None:
                def register(
                    name: str, sink_class: type[Sink], *, matches: Callable[[str], bool], description: str = ""
                ) -> None:
                    if not (isinstance(sink_class, type) and issubclass(sink_class, Sink)):
                        raise PluginError(f"sink {name!r} must be a subclass of fifo_core.sink.Sink")
                    found.append(SinkSpec(name, sink_class, matches, description, plugin))

                function(register=register)

            self._each_implementation("register_sinks", collect)
            self._sinks = found
        return self._sinks

    def sink_for(self, target: str) -> SinkSpec:
        """The sink that accepts ``target``, or a :class:`ConfigError` listing the choices."""
        for spec in self.sinks():
            if spec.matches(target):
                return spec
        listing = "; ".join(f"{spec.name}: {spec.description}" for spec in self.sinks()) or "none installed"
        raise ConfigError(f"no sink accepts {target!r}. Sinks: {listing}", field="sinks")

    # -- extension points and observers ----------------------------------------------------

    def resolve_prompt(self, prompt: str) -> PromptTimeline | None:
        return self.manager.hook.resolve_prompt(prompt=prompt)

    def on_run_start(self, config: RunConfig, backbone: Backbone) -> None:
        self.manager.hook.on_run_start(config=config, backbone=backbone)

    def on_iteration(self, event: IterationEvent) -> None:
        self.manager.hook.on_iteration(event=event)

    def on_frame(self, event: FrameEvent) -> None:
        self.manager.hook.on_frame(event=event)

    def on_run_end(self, summary: RunSummary) -> None:
        self.manager.hook.on_run_end(summary=summary)

    def report_failures(self, stream: Any = None) -> None:
        # registration is lazy; run it now so that name clashes are among the failures reported
        self.backbones()
        self.sinks()
        for failure in self.failures:
            print(f"warning: {failure.describe()}", file=stream or sys.stderr)


_default: Plugins | None = None


def default_plugins() -> Plugins:
    """The process-wide manager with every selected entry point loaded (built once)."""
    global _default
    if _default is None:
        _default = Plugins()
    return _default
