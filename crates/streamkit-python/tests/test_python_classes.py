"""Python Layer / StreamSource / StreamSink subclasses, mixed with Rust ones; zero-copy frames."""

import asyncio

import numpy as np
import pytest

from streamkit import DrawingLayer, Layer, Stream, StreamSink, StreamSource, TimestampedFrame, URILayer, skia
from conftest import run, rss_mb


class Frames(StreamSource):
    """Numbered solid frames from numpy; remembers the arrays it returned."""

    def __init__(self, count, width=64, height=48, timestamped=False):
        self.width, self.height, self.fps = width, height, 30
        self.count, self.n, self.timestamped = count, 0, timestamped
        self.returned = []
        self.closed = False

    async def next_frame(self):
        if self.n == self.count:
            return None
        await asyncio.sleep(0)
        frame = np.zeros((self.height, self.width, 4), np.uint8)
        frame[..., 0] = self.n
        frame[..., 3] = 255
        self.returned.append(frame)
        self.n += 1
        if self.timestamped:
            return TimestampedFrame(frame=frame, pts=self.n * 1_000_000_000, frame_number=self.n - 1)
        return frame

    async def close(self):
        self.closed = True


class Collect(StreamSink):
    def __init__(self):
        self.frames, self.timestamps, self.addresses, self.closed = [], [], [], False

    async def write_frame(self, frame, timestamp):
        self.addresses.append(frame.__array_interface__["data"][0])
        self.frames.append(frame)  # keeps the engine's frame alive: no copy made
        self.timestamps.append(timestamp)

    async def close(self):
        self.closed = True


def address(array):
    return array.__array_interface__["data"][0]


def test_python_source_and_sink_frames_are_never_copied():
    source, sink = Frames(5), Collect()
    report = run(Stream(source=source, sink=sink, realtime=False).run())
    assert report["frames"] == 5 and source.closed and sink.closed
    assert [f[0, 0, 0] for f in sink.frames] == [0, 1, 2, 3, 4]
    # Without layers the engine passes the source's memory straight to the sink.
    assert sink.addresses == [address(a) for a in source.returned]
    frame = sink.frames[0]
    assert not frame.flags.writeable, "engine frames are read-only views"
    with pytest.raises(ValueError):
        frame[0, 0, 0] = 1
    # DLPack export shares the memory too.
    assert address(np.from_dlpack(frame)) == address(frame)


def test_timestamped_frames_carry_their_pts():
    sink = Collect()
    run(Stream(source=Frames(3, timestamped=True), sink=sink, realtime=False).run())
    assert sink.timestamps == [1.0, 2.0, 3.0]


class Probe(Layer):
    """An async Python layer that reads ctx.frame and draws a rectangle."""

    def __init__(self):
        super().__init__("probe", z_index=2)
        self.frame_addresses = []
        self.threads = set()

    async def render(self, canvas, ctx):
        await asyncio.sleep(0)
        import threading
        self.threads.add(threading.current_thread().name)
        self.frame_addresses.append(address(ctx["frame"]))
        canvas.drawRect(skia.Rect.MakeXYWH(0, 0, 8, 8), skia.Paint(Color=skia.ColorGREEN))


class SyncLayer(Layer):
    def render(self, canvas, ctx):
        canvas.drawRect(skia.Rect.MakeXYWH(8, 0, 8, 8), skia.Paint(Color=skia.ColorBLUE))


def test_python_layers_mix_with_rust_layers_and_see_the_source_frame_without_copy():
    source, sink = Frames(4), Collect()
    stream = Stream(source=source, sink=sink, realtime=False)
    probe = stream.add_layer(Probe())
    stream.add_layer(SyncLayer("sync", z_index=3))
    stream.add_layer(URILayer("text:{frame}?size=12&pos=bottom-left", layer_id="label", z_index=1))
    stream.add_layer(DrawingLayer("dot", 4, draw_code="def draw(canvas, ctx):\n    canvas.drawRect(skia.Rect(16, 0, 24, 8), skia.Paint(Color=skia.ColorRED))\n"))
    report = run(stream.run())
    assert report["frames"] == 4 and probe.error_count == 0, probe.last_error
    assert probe.frame_addresses == [address(a) for a in source.returned], "ctx.frame is the source's memory"
    assert probe.threads == {"MainThread"}, "async render runs on the loop of Stream.run()"
    px = sink.frames[2]
    assert px[4, 4].tolist() == [0, 255, 0, 255]
    assert px[4, 12].tolist() == [0, 0, 255, 255]
    assert px[4, 20].tolist() == [255, 0, 0, 255]
    assert px[4, 40].tolist() == [2, 0, 0, 255], "source pixels under the layers"
    assert px[30:48, 0:30].max() > 200, "the Rust text layer drew"


def test_errors_in_python_sources_and_sinks_are_reported():
    class Broken(StreamSource):
        width, height = 16, 16

        async def next_frame(self):
            raise RuntimeError("camera unplugged")

    report = run(Stream(source=Broken(), sink="null:", realtime=False).run())
    assert report["end"] == "SourceFailed"
    assert "camera unplugged" in report["failures"][0] and "test_python_classes.py line" in report["failures"][0]

    class BadShape(StreamSource):
        async def next_frame(self):
            return np.zeros((4, 4, 2), np.uint8)

    report = run(Stream(source=BadShape(), sink="null:", realtime=False).run())
    assert "shape" in report["failures"][0]


def test_rgb_and_gray_arrays_are_accepted():
    class Rgb(StreamSource):
        n = 0

        async def next_frame(self):
            self.n += 1
            if self.n > 2:
                return None
            return np.full((8, 8, 3), 200, np.uint8) if self.n == 1 else np.full((8, 8), 100, np.uint8)

    sink = Collect()
    run(Stream(source=Rgb(), sink=sink, realtime=False, width=8, height=8).run())
    assert sink.frames[0][0, 0].tolist() == [200, 200, 200, 255]
    assert sink.frames[1][0, 0, 3] == 255


def test_memory_does_not_grow_over_10000_frames_through_a_python_layer():
    code = "def draw(canvas, ctx):\n    p = skia.Paint(Color=skia.ColorBLUE)\n    canvas.drawCircle(ctx.frame_number % 160, 60, 10, p)\n    f = ctx.frame\n"

    class Count(StreamSink):
        n = 0

        def write_frame(self, frame, timestamp):
            self.n += 1

    def once(frames):
        sink = Count()
        stream = Stream(source="test:ball?size=160x120", sink=sink, realtime=False, frames=frames)
        stream.add_layer(DrawingLayer("mem", 1, draw_code=code))
        run(stream.run(), timeout=300)
        return sink.n

    once(1000)  # warm up allocators and caches
    before = rss_mb()
    assert once(10_000) == 10_000
    grown = rss_mb() - before
    assert grown < 8, f"RSS grew {grown:.1f} MB over 10,000 frames"
