#!/usr/bin/env python3
"""The design's Python approach to `Stream(sink=HLSSink(...))` (issue 3's anchor):
skia-python draws every frame, PyAV encodes it with libx264 (preset
ultrafast) into HLS through FFmpeg's `hls` muxer.

    pyav_skia_hls.py OUT_DIR [--frames 300] [--bitrate 4000000] [--per-frame-surface]
    pyav_skia_hls.py --source SOURCE.y4m [--frames 300]

The picture is the benchmark's common drawing (see run.sh): GStreamer's
`videotestsrc pattern=ball` disc (radius 20, white, anti-aliased, on its
Lissajous path) over a solid #203050 background and "frame N" in DejaVu Sans
48 px at the top left. The skia surface draws straight into a numpy array
(the design's zero-copy skia ↔ numpy hand-over); the RGBA frame is converted
to I420 once by swscale (`VideoFrame.reformat`), and `--source` writes those
very I420 frames to a Y4M, so PSNR/SSIM against it measure the encoder alone.
`--per-frame-surface` follows the design's `compose_frame` to the letter
instead: a new `skia.Surface` every frame, `makeImageSnapshot()` and a copy
to numpy (slower; not what the benchmark's anchor runs).

Prints one JSON line: frames, wall seconds of the frame loop (imports and
start-up excluded) and its fps.
"""

import argparse
import json
import math
import os
import sys
import time
from fractions import Fraction

import av
import numpy as np
import skia

WIDTH, HEIGHT, FPS = 1920, 1080, 30
RADIUS = 20
FONT_FILE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def ball_centre(n):
    """videotestsrc's ball path (gst-plugins-base videotestsrc.c)."""
    x = RADIUS + (0.5 + 0.5 * math.sin(2 * math.pi * n / 200)) * (WIDTH - 2 * RADIUS)
    y = RADIUS + (0.5 + 0.5 * math.sin(2 * math.pi * math.sqrt(2) * n / 200)) * (HEIGHT - 2 * RADIUS)
    return x, y


class Drawing:
    """One skia surface over one numpy RGBA array, redrawn every frame."""

    def __init__(self, per_frame_surface=False):
        self.per_frame_surface = per_frame_surface
        self.pixels = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
        self.surface = skia.Surface(self.pixels, colorType=skia.kRGBA_8888_ColorType)
        typeface = skia.Typeface.MakeFromFile(FONT_FILE) if os.path.exists(FONT_FILE) else skia.Typeface()
        self.font = skia.Font(typeface, 48)
        self.ball = skia.Paint(AntiAlias=True, Color=skia.ColorWHITE)
        self.text = skia.Paint(AntiAlias=True, Color=skia.ColorWHITE)
        self.background = skia.Color(0x20, 0x30, 0x50)

    def draw(self, n):
        """Draws frame `n` and returns it as an I420 av.VideoFrame."""
        surface = skia.Surface(WIDTH, HEIGHT) if self.per_frame_surface else self.surface
        canvas = surface.getCanvas()
        canvas.clear(self.background)
        x, y = ball_centre(n)
        canvas.drawCircle(x, y, RADIUS, self.ball)
        canvas.drawString(f"frame {n}", 40, 78, self.font, self.text)
        if self.per_frame_surface:
            pixels = surface.makeImageSnapshot().toarray(colorType=skia.kRGBA_8888_ColorType)
        else:
            surface.flushAndSubmit()
            pixels = self.pixels
        frame = av.VideoFrame.from_ndarray(pixels, format="rgba")
        return frame.reformat(format="yuv420p")


def encode_hls(out_dir, frames, bitrate, per_frame_surface):
    os.makedirs(out_dir, exist_ok=True)
    container = av.open(
        os.path.join(out_dir, "index.m3u8"),
        mode="w",
        format="hls",
        options={
            "hls_time": "2",
            "hls_list_size": "0",
            "hls_segment_filename": os.path.join(out_dir, "segment%05d.ts"),
        },
    )
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.bit_rate = bitrate
    stream.gop_size = 2 * FPS
    stream.options = {"preset": "ultrafast"}
    drawing = Drawing(per_frame_surface)
    for n in range(frames):
        frame = drawing.draw(n)
        frame.pts, frame.time_base = n, Fraction(1, FPS)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


def write_source(path, frames):
    drawing = Drawing()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".encode())
        for n in range(frames):
            planes = drawing.draw(n).to_ndarray()  # (H * 3/2, W): Y, then U, then V
            out.write(b"FRAME\n")
            out.write(np.ascontiguousarray(planes).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", help="HLS output folder (index.m3u8, segment%%05d.ts)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--bitrate", type=int, default=4_000_000, help="bits per second")
    parser.add_argument("--source", help="write the drawn frames (I420) to this Y4M instead of encoding")
    parser.add_argument(
        "--per-frame-surface", action="store_true", help="a new skia surface and a snapshot copy every frame"
    )
    args = parser.parse_args()
    if not args.out_dir and not args.source:
        parser.error("give OUT_DIR or --source SOURCE.y4m")
    started = time.perf_counter()
    if args.source:
        write_source(args.source, args.frames)
    else:
        encode_hls(args.out_dir, args.frames, args.bitrate, args.per_frame_surface)
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": args.frames, "seconds": seconds, "fps": args.frames / seconds}))


if __name__ == "__main__":
    sys.exit(main())
