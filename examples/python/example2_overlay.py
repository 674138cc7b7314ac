"""The design's Example 2 with a TestSource instead of a webcam, and file +
HLS sinks instead of WebRTC: a source, an overlay drawn by Python code, two outputs.

    python examples/python/example2_overlay.py [OUTPUT_DIR]
"""

import asyncio
import os
import sys

from streamkit import DrawingLayer, FileSink, HLSSink, Stream, TestSource

SECONDS = float(os.environ.get("STREAMKIT_EXAMPLE_SECONDS", "10"))
OUTPUT = sys.argv[1] if len(sys.argv) > 1 else "output/example2"


async def main():
    os.makedirs(OUTPUT, exist_ok=True)
    # Test pattern source (stands in for WebcamSource(device_id=0, width=1920, height=1080, fps=30))
    camera = TestSource(width=1280, height=720, fps=30, pattern="ball")

    # File and HLS sinks (stand in for WebRTCSink)
    sinks = [FileSink(os.path.join(OUTPUT, "overlay.mp4")), HLSSink(os.path.join(OUTPUT, "hls"), segment_duration=2)]

    # Create stream
    stream = Stream(source=camera, sink=sinks)

    # Add overlay layer
    overlay_code = '''
def draw(canvas, ctx):
    # Draw AR measurement overlay
    paint = skia.Paint(AntiAlias=True, Color=skia.ColorRED)
    canvas.drawText("Distance: 2.5m", 100, 100, paint)
'''

    stream.add_layer(DrawingLayer('overlay', z_index=1, draw_code=overlay_code))

    try:
        await asyncio.wait_for(stream.run(), timeout=SECONDS)
    except asyncio.TimeoutError:
        pass
    print(f"wrote {OUTPUT}/overlay.mp4 and {OUTPUT}/hls/index.m3u8 ({stream.stats()['frames_out']} frames)")


asyncio.run(main())
