"""The design's ``Stream``: source → layers → sinks, run by the Rust engine."""

from __future__ import annotations

import asyncio
from typing import Iterable, Optional, Union

from . import _native
from .io import StreamSink, StreamSource, URISink, URISource
from .layers import Layer

SourceLike = Union[str, URISource, StreamSource, None]
SinkLike = Union[str, URISink, StreamSink]


def _native_source(source):
    if source is None or isinstance(source, str):
        return source
    if isinstance(source, URISource):
        return source.uri
    if hasattr(source, "next_frame"):
        return source
    raise TypeError(f"source must be a URI, a streamkit source or a StreamSource, not {type(source).__name__}")


def _native_sink(sink):
    if isinstance(sink, str):
        return sink
    if isinstance(sink, URISink):
        return sink.uri
    if hasattr(sink, "write_frame"):
        return sink
    raise TypeError(f"sink must be a URI, a streamkit sink or a StreamSink, not {type(sink).__name__}")


class Stream:
    """A pipeline: ``Stream(source=…, sink=…, width=…, height=…, fps=…)``.

    ``sink`` may be one sink or a list (every sink gets every frame). Sources
    and sinks are streamkit classes, URIs (``'test:ball'``, ``'out.mp4'``) or
    Python ``StreamSource``/``StreamSink`` objects. Without a source, layers
    draw on a black ``width``x``height`` canvas (default 1920x1080).
    ``realtime`` paces output at ``fps`` (the default, as in the design);
    ``frames`` / ``duration`` (seconds) stop the stream by themselves.
    """

    def __init__(self, source: SourceLike = None, sink: Union[SinkLike, Iterable[SinkLike], None] = None,
                 width: Optional[int] = None, height: Optional[int] = None, fps: Optional[float] = None,
                 realtime: bool = True, frames: Optional[int] = None, duration: Optional[float] = None,
                 sinks: Optional[Iterable[SinkLike]] = None, queue: Optional[int] = None):
        all_sinks = []
        if sink is not None:
            all_sinks.extend(sink if isinstance(sink, (list, tuple)) else [sink])
        all_sinks.extend(sinks or [])
        if not all_sinks:
            raise ValueError("a Stream needs a sink, e.g. Stream(sink=FileSink('out.mp4'))")
        if (width is None) != (height is None):
            raise ValueError("give both width and height, or neither")
        self.source = source
        self.sinks = all_sinks
        self._native = _native.NativeStream(
            _native_source(source), [_native_sink(s) for s in all_sinks], width=width, height=height,
            fps=float(fps) if fps is not None else None, realtime=realtime, frames=frames, duration=duration,
            queue=queue)
        draw_func = getattr(source, "draw_func", None)
        if draw_func is not None:  # TestSource(draw_func=…): drawn under every layer
            self._native.add_python_layer("__source__", -(2**31), draw_func)
        self._layers: dict[str, Layer] = {}
        self._done: Optional[asyncio.Future] = None
        self.report: Optional[dict] = None

    @property
    def fps(self) -> float:
        return self._native.fps

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done()

    def add_layer(self, layer: Layer) -> Layer:
        """Adds a layer (also while running; it appears from the next frame).
        A layer with the same id replaces the old one."""
        if not isinstance(layer, Layer):
            raise TypeError(f"add_layer wants a streamkit Layer (DrawingLayer, MLLayer, a Layer subclass), not {type(layer).__name__}")
        layer._attach(self._native)
        self._layers[layer.layer_id] = layer
        return layer

    def remove_layer(self, layer_id: str) -> None:
        """Removes a layer by id (also while running)."""
        self._layers.pop(layer_id, None)
        self._native.remove_layer(layer_id)

    def set_z_index(self, layer_id: str, z_index: int) -> None:
        self._native.set_z_index(layer_id, z_index)

    def set_opacity(self, layer_id: str, opacity: float) -> None:
        self._native.set_opacity(layer_id, opacity)

    def layer(self, layer_id: str) -> Optional[Layer]:
        return self._layers.get(layer_id)

    def stats(self) -> dict:
        """Live statistics: fps, frames, per-stage mean ms, drops, layer errors."""
        return self._native.stats()

    async def run(self) -> dict:
        """Runs until the source ends, a limit is reached or ``stop()``; returns
        a report. The engine runs on Rust threads without the GIL. Cancelling
        (``asyncio.wait_for`` timeout, Ctrl-C under ``asyncio.run``) stops the
        stream and finalises every sink before the cancellation propagates."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._done = done

        def finished(outcome):  # called on an engine thread
            def settle():
                if done.done():
                    return
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        self._native.start(loop, finished)
        try:
            try:
                report = await asyncio.shield(done)
            except asyncio.CancelledError:
                self._native.stop()
                await asyncio.shield(done)  # sinks are finalised before we give up
                raise
        finally:
            self._native.wait_finished()
        self.report = report
        return report

    async def stop(self) -> None:
        """Stops the stream after the frame in flight and waits until every
        sink is finalised. Safe to call when it is not running."""
        self._native.stop()
        if self._done is not None:
            try:
                await asyncio.shield(self._done)
            except Exception:
                pass

    def run_sync(self) -> dict:
        """``asyncio.run(stream.run())`` for scripts without an event loop."""
        return asyncio.run(self.run())
