"""Resolves ``@path`` prompts into a :class:`PromptTimeline`.

The file holds one prompt per line, each starting with the output frame it takes over from::

    0: a red circle moving left on a blue background
    120: a red circle bouncing on a blue background

Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

from pathlib import Path

from fifo_core.config import PromptTimeline, TimedPrompt
from fifo_core.errors import ConfigError
from fifo_core.hookspecs import hookimpl


def parse_timeline(text: str, source: str = "timeline") -> PromptTimeline:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        start, sep, prompt = line.partition(":")
        if not sep or not start.strip().isdigit() or not prompt.strip():
            raise ConfigError(
                f"{source} line {number} is {line!r}; expected 'FRAME: prompt', for example '120: a cat walking'",
                field="prompt",
            )
        entries.append(TimedPrompt(start=int(start), prompt=prompt.strip()))
    if not entries:
        raise ConfigError(f"{source} holds no prompts; add lines like '0: a cat walking'", field="prompt")
    try:
        return PromptTimeline(entries=tuple(entries))
    except ValueError as error:
        raise ConfigError(f"{source}: {error}", field="prompt") from None


@hookimpl
def resolve_prompt(prompt):
    if not prompt.startswith("@"):
        return None
    path = Path(prompt[1:])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the prompt timeline {str(path)!r}: {error.strerror}", field="prompt") from None
    return parse_timeline(text, source=str(path))
