"""The hooks a plugin may implement. Specs are signatures and docstrings only.

Arguments only ever grow; an implementation may accept any subset of them.
Every hook has a section in ``docs/hooks.md`` (a test checks it).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("fifo_diffusion")


@hookspec
def register_backbones(register):
    """Register backbones: call ``register(name, factory, *, defaults, options=None,
    description="", aliases=())`` once per backbone. ``factory(**options)`` returns a
    :class:`fifo_core.backbone.Backbone`; heavy imports belong inside it."""


@hookspec
def register_sinks(register):
    """Register sinks: call ``register(name, sink_class, *, matches, description="")``.
    ``matches(target)`` says whether ``target`` (a ``--sink`` value) is for this sink."""


@hookspec(firstresult=True)
def resolve_prompt(prompt):
    """Turn a prompt argument into a :class:`fifo_core.config.PromptTimeline`, or return
    ``None`` to leave it to other plugins (the plain prompt is the fallback)."""


@hookspec
def on_run_start(config, backbone):
    """Called once, after the backbone is loaded and the sinks are open, before the first step."""


@hookspec
def on_iteration(event):
    """Called after every FIFO iteration with a :class:`fifo_core.sampling.IterationEvent`."""


@hookspec
def on_frame(event):
    """Called for every video frame handed to the sinks, with a :class:`fifo_core.sampling.FrameEvent`."""


@hookspec
def on_run_end(summary):
    """Called once when a run ends (finished, interrupted or failed) with a :class:`fifo_core.api.RunSummary`."""
