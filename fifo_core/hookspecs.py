"""The hooks a plugin may implement, and ``hookimpl``, the marker that implements one.

Specs are typed signatures and docstrings only. Arguments only ever grow; an implementation may
accept any subset of them. The core calls every hook through the facade of the same names,
:class:`fifo_core.plugins.Plugins`. Every hook has a section in ``docs/hooks.md`` (a test
checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import pluggy
from pydantic import BaseModel

from fifo_core.backbone import Backbone, BackboneDefaults
from fifo_core.config import PromptTimeline, RunConfig
from fifo_core.events import FrameEvent, IterationEvent, RunSummary
from fifo_core.sink import Sink

hookspec = pluggy.HookspecMarker("fifo_diffusion")
hookimpl = pluggy.HookimplMarker("fifo_diffusion")


class RegisterBackbone(Protocol):
    """The ``register`` that :func:`register_backbones` receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Backbone],
        *,
        defaults: BackboneDefaults,
        options: type[BaseModel] | None = None,
        description: str = "",
        aliases: Iterable[str] = (),
        default: bool = False,
    ) -> None: ...


class RegisterSink(Protocol):
    """The ``register`` that :func:`register_sinks` receives."""

    def __call__(self, name: str, sink_class: type[Sink], *, matches: Callable[[str], bool], description: str = "") -> None: ...


@hookspec
def register_backbones(register: RegisterBackbone) -> None:
    """Register backbones: call ``register(name, factory, *, defaults, options=None,
    description="", aliases=(), default=False)`` once per backbone. ``factory(**options)``
    returns a :class:`fifo_core.backbone.Backbone`; heavy imports belong inside it. ``default``
    declares the backbone a run uses when it names none."""


@hookspec
def register_sinks(register: RegisterSink) -> None:
    """Register sinks: call ``register(name, sink_class, *, matches, description="")``.
    ``matches(target)`` says whether ``target`` (a ``--sink`` value) is for this sink."""


@hookspec(firstresult=True)
def resolve_prompt(prompt: str) -> PromptTimeline | None:
    """Turn a prompt argument into a :class:`fifo_core.config.PromptTimeline`, or return
    ``None`` to leave it to other plugins (the plain prompt is the fallback)."""


@hookspec
def on_run_start(config: RunConfig, backbone: Backbone) -> None:
    """Called once, after the backbone is loaded and the sinks are open, before the first step."""


@hookspec
def on_iteration(event: IterationEvent) -> None:
    """Called after every FIFO iteration with a :class:`fifo_core.events.IterationEvent`."""


@hookspec
def on_frame(event: FrameEvent) -> None:
    """Called for every video frame handed to the sinks, with a :class:`fifo_core.events.FrameEvent`."""


@hookspec
def on_run_end(summary: RunSummary) -> None:
    """Called once when a run ends (finished, interrupted or failed) with a :class:`fifo_core.events.RunSummary`."""
