"""Stream with engine sources and sinks, by class and by URI; errors; run/stop."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import streamkit
from streamkit import (FileSink, FileSource, HLSSink, NetworkSink, NetworkSource, NullSink, RTPSink, Stream, TestSource,
                       WebRTCSink, WebRTCSource)
from conftest import ffprobe_frames, run


def y4m_frames(path):
    data = open(path, "rb").read()
    assert data.startswith(b"YUV4MPEG2 ")
    return data.count(b"FRAME\n")


def test_classes_and_uris_build_the_same_stream(out):
    a, b = out / "a.y4m", out / "b.y4m"
    report = run(Stream(source=TestSource(64, 48, fps=30, pattern="ball"), sink=FileSink(a), realtime=False, frames=12).run())
    assert report["frames"] == 12 and report["failures"] == []
    run(Stream(source="test:ball?size=64x48&fps=30", sink=str(b), realtime=False, frames=12).run())
    assert y4m_frames(a) == y4m_frames(b) == 12
    assert open(a, "rb").read() == open(b, "rb").read()


def test_several_sinks_mp4_hls_and_file_source(out):
    sinks = [FileSink(out / "x.mp4", bitrate=1_000_000, preset="slow"),
             HLSSink(out / "hls", segment_duration=1, playlist_size=0, preset="fast"), NullSink()]
    report = run(Stream(source=TestSource(320, 240, 30), sink=sinks, realtime=False, frames=60).run())
    assert report["frames"] == 60 and not report["failures"], report
    playlist = (out / "hls" / "index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist and ".ts" in playlist
    assert ffprobe_frames(out / "x.mp4") == 60
    assert ffprobe_frames(out / "hls" / "index.m3u8") == 60
    # Read the MP4 back through FileSource.
    back = run(Stream(source=FileSource(out / "x.mp4"), sink=FileSink(out / "back.y4m"), realtime=False).run())
    assert back["frames"] == 60 and y4m_frames(out / "back.y4m") == 60


def test_generated_stream_has_design_defaults(out):
    stream = Stream(sink=FileSink(out / "a.png"), frames=1, realtime=False)
    stream.add_layer(streamkit.URILayer("text:hello"))
    run(stream.run())
    data = (out / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1920, 1080)


def test_errors_are_python_exceptions_with_clear_messages(out):
    with pytest.raises(ValueError, match="preset"):
        HLSSink(out / "hls", preset="ultrafast")
    with pytest.raises(ValueError, match=r"unknown source scheme 'tset:'.*did you mean 'test:'"):
        Stream(source="tset:ball", sink="null:")
    with pytest.raises(ValueError, match="unknown"):
        Stream(source="test:ball?sise=64x48", sink="null:")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        FileSource(out / "missing.mp4")
    with pytest.raises(FileNotFoundError):
        Stream(source=str(out / "missing.y4m"), sink="null:")
    with pytest.raises(ValueError, match="width and height"):
        Stream(sink="null:", width=640)
    with pytest.raises(ValueError, match="fps"):
        Stream(sink="null:", fps=-1)
    with pytest.raises(ValueError, match="needs a sink"):
        Stream(source="test:ball")
    with pytest.raises(ValueError, match="protocol='udp'"):
        NetworkSource("localhost", 9000, protocol="udp")
    with pytest.raises(TypeError, match="sink must be"):
        Stream(sink=42)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FileSink(out / "no" / "such" / "dir.mp4")
    stream = Stream(source="test:ball?size=32x32", sink="null:", frames=1, realtime=False)
    run(stream.run())
    with pytest.raises(RuntimeError, match="already ran"):
        run(stream.run())


def test_layers_added_and_removed_while_running():
    async def main():
        stream = Stream(source="test:solid?size=64x64", sink=NullSink(), realtime=True, fps=100)
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(0.2)
        layer = stream.add_layer(streamkit.DrawingLayer("dot", 1, draw_code="def draw(canvas, ctx):\n    pass\n"))
        await asyncio.sleep(0.3)
        seen = layer.renders
        stream.remove_layer("dot")
        await asyncio.sleep(0.2)
        after_remove = layer.renders
        await asyncio.sleep(0.2)
        await stream.stop()
        report = await task
        return seen, after_remove, layer.renders, report

    seen, after_remove, final, report = run(main())
    assert seen > 5, "the layer drew while the stream ran"
    assert final == after_remove, "a removed layer draws no more"
    assert report["end"] == "Stopped"


def test_the_gil_is_released_while_the_engine_works(out):
    """A Python task keeps running smoothly while Rust encodes 1080p H.264."""
    async def main():
        ticks = 0
        gaps = []

        async def ticker():
            nonlocal ticks
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
                ticks += 1

        t = asyncio.create_task(ticker())
        stream = Stream(source=TestSource(1280, 720, 30), sink=FileSink(out / "gil.mp4"), realtime=False, frames=45)
        started = time.perf_counter()
        await stream.run()
        elapsed = time.perf_counter() - started
        t.cancel()
        return ticks, elapsed, sorted(gaps)

    ticks, elapsed, gaps = run(main())
    # Sleeping 5 ms per tick, a free loop ticks ~elapsed/6ms times; a held GIL would starve it.
    assert ticks >= 0.4 * elapsed / 0.006, (ticks, elapsed)
    assert gaps[len(gaps) // 2] < 0.05, "median gap between ticks stays small"


def test_cancellation_finalises_sinks(out):
    """asyncio.wait_for (the design's Example 1) cancels run(): the HLS playlist is still ended."""
    async def main():
        stream = Stream(source=TestSource(320, 240, 30), sink=HLSSink(out / "live", segment_duration=1), realtime=True)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.run(), timeout=1.5)
        await stream.stop()
        return stream

    run(main())
    playlist = (out / "live" / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST"), playlist


def test_ctrl_c_finalises_sinks(out):
    script = textwrap.dedent(f"""
        import asyncio, sys
        from streamkit import Stream, TestSource, HLSSink
        async def main():
            stream = Stream(source=TestSource(320, 240, 30), sink=HLSSink({str(out / 'cc')!r}, segment_duration=1))
            print("running", flush=True)
            await stream.run()
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    playlist = (out / "cc" / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST"), playlist


def test_network_sink_and_source_over_loopback(out):
    port = 18000 + os.getpid() % 1000

    async def main():
        sender = Stream(source=TestSource(160, 120, 30, pattern="smpte"), sink=NetworkSink(port, compression="jpeg"), realtime=True)
        send_task = asyncio.create_task(sender.run())
        await asyncio.sleep(0.2)
        # Connects to the sender here (blocking this loop, not the GIL).
        receiver = Stream(source=NetworkSource("127.0.0.1", port), sink=FileSink(out / "net.y4m"), realtime=False, frames=10)
        report = await receiver.run()
        await sender.stop()
        await send_task
        return report

    report = run(main())
    assert report["frames"] == 10
    assert y4m_frames(out / "net.y4m") == 10


@pytest.mark.parametrize("shared_memory", [None, False])
def test_raw_frames_between_local_streams_with_and_without_shared_memory(out, shared_memory):
    port = 19000 + os.getpid() % 1000 + (0 if shared_memory is None else 1)
    sink = NetworkSink(port, shared_memory=shared_memory)
    source = NetworkSource("127.0.0.1", port, shared_memory=shared_memory)
    assert sink.uri.endswith("shm=off") == (shared_memory is False), sink.uri
    assert source.uri.endswith("shm=off") == (shared_memory is False), source.uri

    async def main():
        sender = Stream(source=TestSource(160, 120, 30, pattern="smpte"), sink=sink, realtime=True)
        send_task = asyncio.create_task(sender.run())
        await asyncio.sleep(0.2)
        receiver = Stream(source=source, sink=FileSink(out / "raw.y4m"), realtime=False, frames=10)
        report = await receiver.run()
        await sender.stop()
        await send_task
        return report

    report = run(main())
    assert report["frames"] == 10 and not report["failures"], report
    assert y4m_frames(out / "raw.y4m") == 10


def test_rtp_and_webrtc_classes_are_engine_uris(out):
    sink = RTPSink("127.0.0.1", 15004 + os.getpid() % 1000, sdp=out / "out.sdp")
    report = run(Stream(source=TestSource(64, 48, 30), sink=sink, realtime=False, frames=5).run())
    assert report["frames"] == 5 and not report["failures"], report
    assert "m=video" in (out / "out.sdp").read_text()
    assert WebRTCSink(9999, ice_servers=["stun:a:3478", "stun:b:3478"]).uri == "whep://127.0.0.1:9999?ice_servers=stun:a:3478,stun:b:3478"
    assert WebRTCSource("10.0.0.2", token="t").uri == "whep-pull://10.0.0.2:8889?token=t"
    with pytest.raises(ValueError, match="format='mjpeg'"):
        RTPSink(format="mjpeg")
