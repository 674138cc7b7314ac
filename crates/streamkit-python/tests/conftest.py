import asyncio
import os
import shutil
import subprocess

import pytest

EXAMPLE1_CODE = '''
import math

def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True)
    paint.setColor(skia.ColorBLUE)

    # Animated circle
    x = 960 + 400 * math.cos(ctx.time * 2)
    y = 540 + 400 * math.sin(ctx.time * 2)
    canvas.drawCircle(x, y, 50, paint)
'''

EXAMPLE2_CODE = '''
def draw(canvas, ctx):
    # Draw AR measurement overlay
    paint = skia.Paint(AntiAlias=True, Color=skia.ColorRED)
    canvas.drawText("Distance: 2.5m", 100, 100, paint)
'''

EXAMPLE6_CODE = '''
def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True)
    paint.setColor(skia.ColorWHITE)
    paint.setTextSize(48)
    canvas.drawText(f"FPS: {ctx.fps}", 50, 100, paint)
'''


def run(coro, timeout=60):
    """Runs a coroutine on a fresh event loop with a safety timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.fixture
def out(tmp_path):
    return tmp_path


def ffprobe_frames(path) -> int:
    """Frames FFmpeg decodes from a file or playlist (the real peer). Missing
    ffprobe skips, or fails with CI=true."""
    if shutil.which("ffprobe") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ffprobe is missing (CI=true): install ffmpeg")
        pytest.skip("ffprobe not installed")
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames,codec_name,width,height", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True)
    fields = result.stdout.strip().split(",")
    return int(fields[-1])
