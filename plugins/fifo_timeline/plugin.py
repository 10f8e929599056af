"""Resolves ``@path`` prompts into a :class:`PromptTimeline`.

The file holds one prompt per line, each starting with the output frame it takes over from::

    0: a red circle moving left on a blue background
    120: a red circle bouncing on a blue background

Blank lines and lines starting with ``#`` are ignored. Only a regular file of at most
``MAX_TIMELINE_BYTES`` is read (``@/dev/zero`` would never end), and a file whose first entry is
not ``FRAME: prompt`` is not quoted back (``@/etc/passwd`` would print a secret). ``@@text`` is the
literal prompt ``@text``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import ValidationError

from fifo_core.config import PromptTimeline, TimedPrompt
from fifo_core.errors import ConfigError
from fifo_core.hookspecs import hookimpl

# A timeline of a million characters is already tens of thousands of scenes.
MAX_TIMELINE_BYTES = 1 << 20
FORMAT_HINT = "expected 'FRAME: prompt' lines, for example '0: a cat walking'"


def parse_timeline(text: str, source: str = "timeline") -> PromptTimeline:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        start, sep, prompt = line.partition(":")
        if not sep or not start.strip().isdigit() or not prompt.strip():
            if not entries:  # maybe not a timeline at all: say nothing of what the file holds
                raise ConfigError(
                    f"{source} is not a prompt timeline: line {number} is not 'FRAME: prompt'; {FORMAT_HINT}. "
                    "For a literal prompt starting with '@', write '@@'",
                    field="prompt",
                )
            raise ConfigError(
                f"{source} line {number} is {line!r}; expected 'FRAME: prompt', for example '120: a cat walking'",
                field="prompt",
            )
        entries.append(TimedPrompt(start=int(start), prompt=prompt.strip()))
    if not entries:
        raise ConfigError(f"{source} holds no prompts; add lines like '0: a cat walking'", field="prompt")
    try:
        return PromptTimeline(entries=tuple(entries))
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {reason}; add a line '0: ...' for the opening scene", field="prompt") from None


@hookimpl
def resolve_prompt(prompt):
    if not prompt.startswith("@"):
        return None
    if prompt.startswith("@@"):
        return PromptTimeline.single(prompt[1:])
    path = Path(prompt[1:])
    return parse_timeline(read_timeline_file(path), source=str(path))


def read_timeline_file(path: Path) -> str:
    """The text of ``path``, a regular UTF-8 file of at most ``MAX_TIMELINE_BYTES``."""
    def refuse(problem: str) -> ConfigError:
        return ConfigError(
            f"cannot use the prompt timeline {str(path)!r}: {problem}; "
            "for a literal prompt starting with '@', write '@@'",
            field="prompt",
        )

    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer before the check below
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise refuse("it is not a regular file (a folder, device or pipe); give a text file")
        with os.fdopen(descriptor, "rb") as file:
            data = file.read(MAX_TIMELINE_BYTES + 1)
    except OSError as error:
        raise refuse(error.strerror or str(error)) from None
    if len(data) > MAX_TIMELINE_BYTES:
        raise refuse(f"it is larger than {MAX_TIMELINE_BYTES} bytes, which no timeline needs")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("it is not UTF-8 text") from None
