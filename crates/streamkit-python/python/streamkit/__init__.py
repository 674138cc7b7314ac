"""streamkit — real-time video from Python over a Rust engine.

    import asyncio
    from streamkit import Stream, HLSSink, DrawingLayer

    stream = Stream(sink=HLSSink('output/stream', segment_duration=2), width=1920, height=1080, fps=30)
    stream.add_layer(DrawingLayer('animation', z_index=0, draw_code=code))
    asyncio.run(stream.run())

Sources, sinks and layers are the design's classes; any engine URI works too
(``Stream(source='test:ball', sink='out.mp4')``). Frames reach Python as
read-only numpy views of the engine's memory, and numpy frames from Python
sources are wrapped without a copy.
"""

from . import skia
from ._frames import TimestampedFrame
from ._native import StreamError, schemes
from .io import (FileSink, FileSource, HLSSink, NetworkSink, NetworkSource, NullSink, RTPSink, RTPSource, StreamSink,
                 StreamSource, TestSource, URISink, URISource, WebRTCSink, WebRTCSource)
from .layers import DrawingLayer, Layer, MLLayer, URILayer
from .stream import Stream

__all__ = [
    "Stream", "Layer", "DrawingLayer", "MLLayer", "URILayer",
    "StreamSource", "StreamSink", "TimestampedFrame",
    "TestSource", "FileSource", "NetworkSource", "RTPSource", "WebRTCSource", "URISource",
    "FileSink", "HLSSink", "NetworkSink", "NullSink", "RTPSink", "WebRTCSink", "URISink",
    "StreamError", "schemes", "skia",
]
