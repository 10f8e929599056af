"""``ImageSequenceSink``: one PNG per frame, ``frame_000000.png``, ``frame_000001.png``, ...

Lossless, and trivially resumable by other tools (``ffmpeg -framerate 8 -i frame_%06d.png``).
Each PNG is written under a temporary name and renamed into place, so an interrupted run never
leaves a truncated ``frame_*.png`` behind. A resumed run (``fifo-diffusion resume``) continues the
numbering where its saved state says the folder stood; frames a killed run wrote after that save
are written again, identical, in place.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from fifo_core.errors import SinkError
from fifo_core.sink import Sink, SinkSettings
from fifo_sinks._files import OutputLock, busy_error, held_by_another_run, nearest_existing_ancestor

FRAME_PATTERN = "frame_*.png"
LOCK_NAME = ".fifo-diffusion.lock"


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


class ImageSequenceSink(Sink):
    """Write numbered PNGs into the folder ``target``, created (with its parents) at the first frame.

    A folder that already holds ``frame_*.png`` files is refused, so two runs never mix, and
    while the sink is open another run cannot write into it (:meth:`reserve` locks it).
    """

    name = "images"
    compress_level: int = 3  # zlib level: 3 is several times faster than Pillow's 6 and barely larger

    def __init__(self, target: str, settings: SinkSettings) -> None:
        super().__init__(target, settings)
        self.folder = Path(target)
        self._lock: OutputLock | None = None
        self._created_folder = False
        self._continuing = False

    @classmethod
    def check_target(cls, target: str, settings: SinkSettings) -> None:
        folder = Path(target)
        if folder.exists():
            if not folder.is_dir():
                raise SinkError(
                    f"images sink target {target!r} is a file; give a folder (ending in '/') for the PNG frames"
                )
            if held_by_another_run(folder / LOCK_NAME):
                raise busy_error(cls.name, target)
            if next(folder.glob(FRAME_PATTERN), None) is not None:
                raise SinkError(
                    f"images sink folder {target!r} already holds frame_*.png files from an earlier run; "
                    "choose a new folder, or move those files away, so the two runs do not mix"
                )
            writable_folder = folder
        else:
            writable_folder = nearest_existing_ancestor(folder)
            if not writable_folder.is_dir():
                raise SinkError(
                    f"images sink cannot create the folder {target!r}: {str(writable_folder)!r} is a file, not a folder"
                )
        if not os.access(writable_folder, os.W_OK | os.X_OK):
            raise SinkError(
                f"images sink cannot write into {target!r}: {str(writable_folder)!r} is not writable by this user; "
                "choose another folder or change its permissions"
            )

    @classmethod
    def check_continue(cls, target: str, settings: SinkSettings, frames: int) -> None:
        folder = Path(target)
        if frames > 0 and not (folder / frame_name(frames - 1)).is_file():
            raise SinkError(
                f"images sink folder {target!r} should hold {frames} frames from the saved run, but "
                f"{frame_name(frames - 1)} is missing; put the frames back, or resume with --sink NEW_FOLDER/"
            )
        if folder.exists() and not folder.is_dir():
            raise SinkError(f"images sink target {target!r} is a file; give a folder (ending in '/') for the PNG frames")
        if folder.exists() and held_by_another_run(folder / LOCK_NAME):
            raise busy_error(cls.name, target)
        writable_folder = folder if folder.exists() else nearest_existing_ancestor(folder)
        if not os.access(writable_folder, os.W_OK | os.X_OK):
            raise SinkError(f"images sink cannot write into {target!r}: {str(writable_folder)!r} is not writable by this user")

    def continue_from(self, frames: int) -> None:
        super().continue_from(frames)
        self._continuing = True

    def reserve(self) -> None:
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = OutputLock(self.folder / LOCK_NAME, exclusive_create=False, sink=self.name, target=self.target)
        if self._continuing:
            return  # the folder's frames are this run's own; later ones are written again in place
        if next(self.folder.glob(FRAME_PATTERN), None) is not None:  # a run that ended since check_target
            self._close()
            raise SinkError(
                f"images sink folder {self.target!r} got frame_*.png files from another run meanwhile; choose a new folder"
            )

    def _open(self, height: int, width: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def _write(self, frame: np.ndarray) -> None:
        from PIL import Image

        final = self.folder / frame_name(self.frames_written)
        partial = final.with_name(f".{final.name}.partial")
        Image.fromarray(frame).save(partial, format="PNG", compress_level=self.compress_level)
        os.replace(partial, final)

    def _close(self) -> None:
        # every frame is complete on disk as soon as _write returns; only the lock is left
        if self._lock is None:
            return
        (self.folder / LOCK_NAME).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None
        if self._created_folder and self.frames_written == 0:
            with contextlib.suppress(OSError):  # not empty after all: keep it
                self.folder.rmdir()

