"""Sources and sinks: the design's classes, each a URI for the Rust engine
(one option parser for the CLI and Python), plus the Python base classes."""

from __future__ import annotations

import os
from typing import Optional, Union
from urllib.parse import quote

_PROTOCOLS = ("tcp",)
_COMPRESSIONS = ("none", "jpeg", "h264")


def _query(**options) -> str:
    parts = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(key)
        else:
            parts.append(f"{key}={quote(str(value), safe='/:.,-_')}")
    return ("?" + "&".join(parts)) if parts else ""


def _on_off(value: Optional[bool]) -> Optional[str]:
    """A boolean option whose default is on: ``_query`` leaves out False."""
    return None if value is None else ("on" if value else "off")


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(map(repr, choices))}")


class StreamSource:
    """Base for sources written in Python: override ``async def next_frame()``
    returning an ``(h, w, 4)`` uint8 numpy array, a ``TimestampedFrame``, or
    None at the end. Optional attributes ``width``, ``height``, ``fps`` and
    ``live`` describe the output; ``close()`` (async or not) is called once.
    Returned RGBA arrays are wrapped without a copy: do not modify an array
    after returning it."""

    width: Optional[int] = None
    height: Optional[int] = None
    fps: Optional[float] = None
    live: bool = False

    async def next_frame(self):
        raise NotImplementedError

    async def close(self):
        pass


class StreamSink:
    """Base for sinks written in Python: override ``async def write_frame(frame,
    timestamp)``. ``frame`` is a read-only ``(h, w, 4)`` uint8 RGBA numpy view of
    the engine's pixels (no copy; ``numpy.array(frame)`` to keep or modify
    it), ``timestamp`` its media time in seconds. ``close()`` finalises."""

    async def write_frame(self, frame, timestamp: float):
        raise NotImplementedError

    async def close(self):
        pass


class URISource:
    """Any engine source by URI: ``URISource('test:ball?size=1280x720')``."""

    def __init__(self, uri: str):
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class URISink:
    """Any engine sink by URI: ``URISink('png:frames/%2505d.png')``."""

    def __init__(self, uri: str):
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class TestSource(URISource):
    """Generated video: a ``pattern`` (smpte, ball, gradient, checker, solid),
    or, as in the design, ``draw_func(canvas, ctx)`` drawing every frame with
    the skia API on a black background (``color`` changes it)."""

    __test__ = False  # not a pytest test class

    def __init__(self, width: int = 1920, height: int = 1080, fps: float = 30, draw_func=None,
                 pattern: Optional[str] = None, frames: Optional[int] = None, color: Optional[str] = None):
        if draw_func is not None and not callable(draw_func):
            raise TypeError("draw_func must be a function draw(canvas, ctx)")
        pattern = pattern or ("solid" if draw_func else "smpte")
        self.width, self.height, self.fps, self.pattern, self.draw_func = width, height, fps, pattern, draw_func
        super().__init__(f"test:{pattern}" + _query(size=f"{width}x{height}", fps=fps, frames=frames, color=color))


class FileSource(URISource):
    """Video from a file: MP4/MOV (H.264), .h264, .y4m; ``loop`` restarts at the end."""

    def __init__(self, file_path: Union[str, os.PathLike], loop: bool = False):
        path = os.fspath(file_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"FileSource: no such file: {path!r}")
        self.file_path = path
        super().__init__(path + _query(loop=loop))


class NetworkSource(URISource):
    """Frames from a ``NetworkSink`` on another process or machine (TCP,
    the streamkit wire format; reconnects). ``NetworkSource('host', 8000)``
    or ``NetworkSource('host:8000')``. Compression is chosen by the sender.
    From a producer on this machine, raw frames come through shared memory
    (no socket copies) unless ``shared_memory=False``."""

    def __init__(self, host: str, port: Optional[int] = None, protocol: str = "tcp", compression: str = "none",
                 token: Optional[str] = None, timeout: Optional[str] = None, reconnect: Optional[str] = None,
                 shared_memory: Optional[bool] = None):
        _check_choice("protocol", protocol, _PROTOCOLS)
        _check_choice("compression", compression, _COMPRESSIONS)
        if port is None:
            host, sep, port_text = host.rpartition(":")
            if not sep or not port_text.isdigit():
                host, port = host or port_text, 8000
            else:
                port = int(port_text)
        self.host, self.port = host, port
        super().__init__(f"tcp://{host}:{port}" + _query(token=token, timeout=timeout, reconnect=reconnect,
                                                         shm=_on_off(shared_memory)))


#: H.264 encoder presets of FileSink and HLSSink, fastest first.
PRESETS = ("fast", "medium", "slow")


class FileSink(URISink):
    """A video file, by extension: .mp4/.mov (H.264, ``bitrate``, ``faststart``,
    ``preset`` fast/medium/slow), .y4m, .raw, .png (last frame) or a PNG
    sequence ``frames/%05d.png``."""

    def __init__(self, output_path: Union[str, os.PathLike], codec: str = "h264", bitrate: int = 8_000_000,
                 faststart: bool = False, keyint: Optional[int] = None, preset: str = "medium"):
        path = os.fspath(output_path)
        self.output_path = path
        ext = os.path.splitext(path)[1].lower()
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"FileSink: the folder {parent!r} does not exist")
        if ext in (".mp4", ".mov", ".m4v"):
            _check_choice("codec", codec, ("h264",))
            _check_choice("preset", preset, PRESETS)
            uri = "mp4:" + path.replace("%", "%25") + _query(bitrate=bitrate, keyint=keyint, faststart=faststart,
                                                             preset=preset)
        elif ext == ".png":
            uri = "png:" + path.replace("%", "%25")
        else:
            uri = path
        super().__init__(uri)


class HLSSink(URISink):
    """HLS: H.264 segments and ``index.m3u8`` in ``output_dir`` (created).
    ``serve='127.0.0.1:8080'`` also serves it over HTTP with a player page.
    ``preset``: the encoder's speed against compression (fast, medium, slow)."""

    def __init__(self, output_dir: Union[str, os.PathLike], segment_duration: float = 2, playlist_size: int = 10,
                 bitrate: int = 8_000_000, format: str = "ts", serve: Optional[str] = None,
                 preset: str = "medium"):
        _check_choice("format", format, ("ts", "fmp4"))
        _check_choice("preset", preset, PRESETS)
        self.output_dir = os.fspath(output_dir)
        super().__init__("hls:" + self.output_dir + _query(segment_duration=segment_duration, playlist_size=playlist_size,
                                                             bitrate=bitrate, format=format, serve=serve,
                                                             preset=preset))


class NetworkSink(URISink):
    """Serves frames over TCP to any number of ``NetworkSource`` consumers.
    Binds 127.0.0.1 unless ``bind_address`` says otherwise (the design's
    0.0.0.0 exposes the stream to the network: ask for it explicitly).
    Consumers on this machine get raw frames through shared memory unless
    ``shared_memory=False``."""

    def __init__(self, port: int = 8000, protocol: str = "tcp", compression: str = "none",
                 bind_address: str = "127.0.0.1", token: Optional[str] = None, bitrate: Optional[int] = None,
                 quality: Optional[int] = None, queue: Optional[str] = None, shared_memory: Optional[bool] = None):
        _check_choice("protocol", protocol, _PROTOCOLS)
        _check_choice("compression", compression, _COMPRESSIONS)
        self.port = port
        super().__init__(f"tcp://{bind_address}:{port}" + _query(compression=compression, token=token, bitrate=bitrate,
                                                                 quality=quality, queue=queue, shm=_on_off(shared_memory)))


class NullSink(URISink):
    """Discards frames (benchmarks, dry runs)."""

    def __init__(self):
        super().__init__("null:")


class RTPSink(URISink):
    """RTP over UDP (unicast or multicast) with an SDP file FFmpeg and
    GStreamer read: H.264, or ``format='raw'`` for RFC 4175 / ST 2110-20."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5004, sdp: Optional[Union[str, os.PathLike]] = None,
                 format: str = "h264", bitrate: Optional[int] = None, ttl: Optional[int] = None):
        _check_choice("format", format, ("h264", "raw"))
        self.host, self.port = host, port
        super().__init__(f"rtp://{host}:{port}" + _query(sdp=os.fspath(sdp) if sdp else None, format=format,
                                                         bitrate=bitrate, ttl=ttl))


class RTPSource(URISource):
    """RTP input described by an SDP file (``sdp=``), or by ``format`` and ``size``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5004, sdp: Optional[Union[str, os.PathLike]] = None,
                 format: Optional[str] = None, size: Optional[str] = None, fps: Optional[float] = None):
        self.host, self.port = host, port
        super().__init__(f"rtp://{host}:{port}" + _query(sdp=os.fspath(sdp) if sdp else None, format=format,
                                                         size=size, fps=fps))


class WebRTCSink(URISink):
    """WebRTC to browsers (WHEP at ``/whep``, a viewer page at ``/``), H.264
    encoded once for every viewer. ``ice_servers``: e.g. ``['stun:host:3478']``."""

    def __init__(self, port: int = 8889, bind_address: str = "127.0.0.1", ice_servers: Optional[list] = None,
                 token: Optional[str] = None, bitrate: Optional[int] = None, max_viewers: Optional[int] = None):
        self.port = port
        servers = ",".join(ice_servers) if ice_servers else None
        super().__init__(f"whep://{bind_address}:{port}" + _query(ice_servers=servers, token=token, bitrate=bitrate,
                                                                  max_viewers=max_viewers))


class WebRTCSource(URISource):
    """Pulls WebRTC video from a WHEP server (e.g. another stream's WebRTCSink)."""

    def __init__(self, host: str, port: int = 8889, token: Optional[str] = None, ice_servers: Optional[list] = None):
        self.host, self.port = host, port
        servers = ",".join(ice_servers) if ice_servers else None
        super().__init__(f"whep-pull://{host}:{port}" + _query(token=token, ice_servers=servers))
