"""The design's Example 1: generated content → HLS (1080p30 animated circle).

    python examples/python/example1_animated_circle_hls.py [OUTPUT_DIR]
    python -m streamkit serve output/stream     # then open http://127.0.0.1:8080/

STREAMKIT_EXAMPLE_SECONDS shortens the run (the tests use 2).
"""

import asyncio
import os
import sys

from streamkit import DrawingLayer, HLSSink, Stream

SECONDS = float(os.environ.get("STREAMKIT_EXAMPLE_SECONDS", "10"))
OUTPUT = sys.argv[1] if len(sys.argv) > 1 else "output/stream"


async def main():
    # Create stream with HLS output
    stream = Stream(
        sink=HLSSink(OUTPUT, segment_duration=2),
        width=1920,
        height=1080,
        fps=30
    )

    # Add drawing layer with animated code
    draw_code = '''
import math

def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True)
    paint.setColor(skia.ColorBLUE)

    # Animated circle
    x = 960 + 400 * math.cos(ctx.time * 2)
    y = 540 + 400 * math.sin(ctx.time * 2)
    canvas.drawCircle(x, y, 50, paint)
'''

    layer = DrawingLayer('animation', z_index=0, draw_code=draw_code)
    stream.add_layer(layer)

    # Run for 10 seconds (wait_for cancels run(); the HLS playlist is finalised first)
    try:
        await asyncio.wait_for(stream.run(), timeout=SECONDS)
    except asyncio.TimeoutError:
        pass
    await stream.stop()
    print(f"wrote {OUTPUT}/index.m3u8: {stream.stats()['frames_out']} frames, layer errors: {layer.error_count}")


asyncio.run(main())
