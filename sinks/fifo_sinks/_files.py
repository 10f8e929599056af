"""What the file sinks share: where a missing folder would be created, and the lock that keeps
two runs from writing one output."""

from __future__ import annotations

import fcntl
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


def held_by_another_run(path: Path) -> bool:
    """Whether an :class:`OutputLock` on ``path`` is held now; creates nothing."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)


def busy_error(sink: str, target: str) -> SinkError:
    return SinkError(f"{sink} sink target {target!r} is being written by another run; wait for it to finish or choose another target")


class OutputLock:
    """An advisory lock (``flock``) on a file, held until :meth:`release` or the process ends.

    The kernel drops it when the holder dies, however it dies, so a killed run never leaves a
    stale lock behind.
    """

    def __init__(self, path: Path, *, exclusive_create: bool, sink: str, target: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive_create else 0)
        self.path = path
        try:
            self._descriptor = os.open(path, flags, 0o644)
        except FileExistsError:
            raise SinkError(
                f"{sink} sink target {target!r} was created by another run meanwhile; choose another name, "
                "or pass --overwrite once that run has finished"
            ) from None
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._descriptor)
            raise busy_error(sink, target) from None

    def release(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
