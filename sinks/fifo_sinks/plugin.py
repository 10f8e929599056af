"""The built-in sinks, registered through the same hook and entry point a third party uses.

Order matters: the first sink whose ``matches`` accepts a ``--sink`` target gets it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fifo_core.hookspecs import hookimpl
from fifo_sinks.images import ImageSequenceSink
from fifo_sinks.mp4 import Mp4Sink
from fifo_sinks.rtmp import RtmpSink, is_rtmp_url


def is_mp4_path(target: str) -> bool:
    return "://" not in target and target.lower().endswith(".mp4")


def is_image_folder(target: str) -> bool:
    if not target.strip() or "://" in target:
        return False  # an empty target is no folder, and a URL of another scheme is not a folder name
    return target.endswith(("/", os.sep)) or Path(target).is_dir() or not Path(target).suffix


@hookimpl
def register_sinks(register):
    register(
        "rtmp",
        RtmpSink,
        matches=is_rtmp_url,
        description="live H.264 stream to rtmp://host[:port]/app/stream-key or rtmps://...",
    )
    register("mp4", Mp4Sink, matches=is_mp4_path, description="H.264 MP4 file, e.g. out.mp4")
    register(
        "images",
        ImageSequenceSink,
        matches=is_image_folder,
        description="numbered PNG frames in a folder, e.g. frames/",
    )
