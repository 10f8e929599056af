"""Every hook, implemented by one plugin registered in the test (nothing installed)."""

from __future__ import annotations

import numpy as np
import pytest

import fifo_gaussian.plugin
from fifo_core.api import RunConfig, generate
from fifo_core.config import PromptTimeline, TimedPrompt
from fifo_core.plugins import Plugins, hookimpl
from fifo_core.sink import Sink
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone


class MemorySink(Sink):
    name = "memory"
    received: list[np.ndarray] = []

    def _open(self, height: int, width: int) -> None:
        MemorySink.received = []

    def _write(self, frame: np.ndarray) -> None:
        MemorySink.received.append(frame)

    def _close(self) -> None:
        pass


class RecordingPlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.prompts_seen: list[str] = []

    @hookimpl
    def register_backbones(self, register):
        register("recorded", GaussianAR1Backbone, defaults=DEFAULTS.model_copy(update={"window": 4, "partitions": 2}))

    @hookimpl
    def register_sinks(self, register):
        register("memory", MemorySink, matches=lambda target: target.startswith("memory:"), description="frames in a list")

    @hookimpl
    def resolve_prompt(self, prompt):
        if prompt == "story":
            return PromptTimeline(entries=(TimedPrompt(start=0, prompt="one"), TimedPrompt(start=3, prompt="two")))
        return None

    @hookimpl
    def on_run_start(self, config, backbone):
        self.calls.append("start")
        assert isinstance(backbone, GaussianAR1Backbone)

    @hookimpl
    def on_iteration(self, event):
        self.calls.append("iteration")

    @hookimpl
    def on_frame(self, event):
        self.calls.append("frame")
        assert event.frame.shape == (64, 64, 3) and event.frame.dtype == np.uint8

    @hookimpl
    def on_run_end(self, summary):
        self.calls.append(f"end:{summary.frames}")


@pytest.fixture
def plugins() -> tuple[Plugins, RecordingPlugin]:
    manager = Plugins(load_entry_points=False)
    recorder = RecordingPlugin()
    manager.register(recorder, name="recorder")
    return manager, recorder


def test_every_hook_is_called_in_order(plugins: tuple[Plugins, RecordingPlugin]) -> None:
    manager, recorder = plugins
    summary = generate(RunConfig(prompt="story", backbone="recorded", frames=6, sinks=["memory:"]), plugins=manager)
    assert summary.frames == 6
    assert recorder.calls[0] == "start" and recorder.calls[-1] == "end:6"
    assert recorder.calls.count("frame") == 6
    # window 4, n 2: the ramp warm-up takes S = 8 iterations, then one frame per iteration
    assert recorder.calls.count("iteration") == 8 + 6 - 1
    assert len(MemorySink.received) == 6


def test_resolved_timeline_drives_the_prompts(plugins: tuple[Plugins, RecordingPlugin]) -> None:
    manager, _ = plugins
    from fifo_core.api import make_sampler

    sampler = make_sampler(RunConfig(prompt="story", backbone="recorded"), plugins=manager)
    assert [clean.prompt for _, clean in zip(range(5), sampler.latents())] == ["one", "one", "one", "two", "two"]


def test_built_in_backbone_registers_through_the_same_hook() -> None:
    manager = Plugins(load_entry_points=False)
    manager.register(fifo_gaussian.plugin, name="gaussian")
    assert manager.backbone("gaussian").name == "gaussian-ar1"  # found by its alias
