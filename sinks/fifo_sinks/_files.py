"""What the file sinks share: where a missing folder would be created."""

from __future__ import annotations

import os
from pathlib import Path

from fifo_core.errors import SinkError


def nearest_existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_can_create_folder(folder: Path, sink: str, target: str) -> None:
    """Raise :class:`SinkError` unless ``folder`` exists or can be created (with its parents)."""
    existing = nearest_existing_ancestor(folder)
    if not existing.is_dir():
        raise SinkError(f"{sink} sink cannot create the folder for {target!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SinkError(
            f"{sink} sink cannot write {target!r}: the folder {str(existing)!r} is not writable by this user; "
            "choose another folder or change its permissions"
        )
