"""The built-in sinks: MP4 files, PNG sequences and live RTMP streams."""

from fifo_sinks.images import ImageSequenceSink
from fifo_sinks.mp4 import Mp4Sink
from fifo_sinks.rtmp import RtmpSink

__all__ = ["ImageSequenceSink", "Mp4Sink", "RtmpSink"]
