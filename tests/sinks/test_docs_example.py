"""The "write a sink" example in docs/sinks.md runs as printed: it registers through the hook,
is chosen for its targets, and writes what it is given."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np

from fifo_core.errors import SinkError
from fifo_core.plugins import Plugins
from fifo_core.sink import SinkFanout, SinkSettings

from .coded_frames import HEIGHT, WIDTH, coded_frame

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sinks.md"


def example_plugin() -> types.ModuleType:
    section = DOCS.read_text().split("## Write a sink", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    module = types.ModuleType("docs_example_sinks")
    exec(compile(code, str(DOCS), "exec"), module.__dict__)
    return module


def test_the_documented_sink_registers_is_chosen_and_writes_every_frame(tmp_path: Path) -> None:
    plugin = example_plugin()
    plugins = Plugins(load_entry_points=False)
    plugins.register(plugin, name="docs-example")
    spec = plugins.sink_for("out.rgb")
    assert (spec.name, spec.sink_class, spec.plugin) == ("raw", plugin.RawVideoSink, "docs-example")

    target = tmp_path / "out.rgb"
    spec.sink_class.check_target(str(target), SinkSettings())
    with SinkFanout([spec.sink_class(str(target), SinkSettings())]) as fanout:
        for index in range(5):
            fanout.write(coded_frame(index))
    assert fanout.failures == []
    written = np.fromfile(target, np.uint8).reshape(5, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(written[3], coded_frame(3))


def test_the_documented_check_target_teaches(tmp_path: Path) -> None:
    sink_class = example_plugin().RawVideoSink
    try:
        sink_class.check_target(str(tmp_path / "missing" / "out.rgb"), SinkSettings())
    except SinkError as error:
        assert "does not exist; create it first" in str(error)
    else:
        raise AssertionError("a missing folder was accepted")
    sink_class(str(tmp_path / "unused.rgb"), SinkSettings()).close()  # no frame, nothing to close
    assert list(tmp_path.iterdir()) == []
