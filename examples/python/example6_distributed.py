"""The design's Example 6 as local processes over loopback: phone (capture) →
edge (overlay) → cloud (ML) → display (HLS), each a separate process joined by
NetworkSink / NetworkSource.

    python examples/python/example6_distributed.py all [OUTPUT_DIR]   # runs the four and stops them
    python examples/python/example6_distributed.py phone|edge|cloud|display [OUTPUT_DIR]

STREAMKIT_EXAMPLE_BASE_PORT picks the ports (default 8000, 8001, 8002).
"""

import asyncio
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_models import onnx_session, segmentation_model  # noqa: E402

from streamkit import DrawingLayer, HLSSink, MLLayer, NetworkSink, NetworkSource, Stream, TestSource  # noqa: E402

SECONDS = float(os.environ.get("STREAMKIT_EXAMPLE_SECONDS", "10"))
PORT = int(os.environ.get("STREAMKIT_EXAMPLE_BASE_PORT", "8000"))
OUTPUT = sys.argv[2] if len(sys.argv) > 2 else "output"
# 1920x1080 in the design; smaller so that four processes fit on a laptop.
WIDTH, HEIGHT = 640, 360


async def phone_capture():
    """Capture (a test pattern stands in for the camera) and send to the edge device"""
    stream = Stream(
        source=TestSource(width=WIDTH, height=HEIGHT, fps=30, pattern="ball"),
        sink=NetworkSink(port=PORT, compression='h264'),  # Send to network
        fps=30
    )
    await stream.run()


async def edge_processing():
    """Receive from phone, add overlays, send to cloud"""
    stream = Stream(
        source=NetworkSource('127.0.0.1', PORT),  # Receive from phone
        sink=NetworkSink(port=PORT + 1),  # Send to cloud
        width=WIDTH,
        height=HEIGHT,
        fps=30
    )

    # Add overlay layer
    overlay_code = '''
def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True)
    paint.setColor(skia.ColorWHITE)
    paint.setTextSize(48)
    canvas.drawText(f"FPS: {ctx.fps}", 50, 100, paint)
'''
    stream.add_layer(DrawingLayer('overlay', z_index=1, draw_code=overlay_code))

    await stream.run()


async def cloud_ml_processing():
    """Receive from edge, run ML, send to display"""
    model = onnx_session(segmentation_model(HEIGHT, WIDTH))

    stream = Stream(
        source=NetworkSource('127.0.0.1', PORT + 1),  # Receive from edge
        sink=NetworkSink(port=PORT + 2),  # Send to display
        width=WIDTH,
        height=HEIGHT,
        fps=30
    )

    # Add ML detection layer
    stream.add_layer(MLLayer('detection', z_index=2, model=model, device='cpu'))

    await stream.run()


async def display_and_record():
    """Receive from cloud and output to HLS"""
    stream = Stream(
        source=NetworkSource('127.0.0.1', PORT + 2),  # Receive from cloud
        sink=HLSSink(os.path.join(OUTPUT, 'stream'), segment_duration=1),  # Save as HLS
        width=WIDTH,
        height=HEIGHT,
        fps=30,
        duration=SECONDS,
    )
    report = await stream.run()
    print(f"display: {report['frames']} frames to {OUTPUT}/stream/index.m3u8", flush=True)


ROLES = {"phone": phone_capture, "edge": edge_processing, "cloud": cloud_ml_processing, "display": display_and_record}


def run_all():
    """Starts the four processes in pipeline order and stops them when the display is done."""
    procs = []
    try:
        for role in ("phone", "edge", "cloud"):
            procs.append(subprocess.Popen([sys.executable, __file__, role, OUTPUT]))
            time.sleep(1.0)  # each NetworkSource connects when its Stream is made
        display = subprocess.run([sys.executable, __file__, "display", OUTPUT], timeout=SECONDS + 60)
        return display.returncode
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)  # Ctrl-C: each stream stops and finalises
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "all"
    if role == "all":
        sys.exit(run_all())
    try:
        asyncio.run(ROLES[role]())
    except KeyboardInterrupt:
        pass
