#!/usr/bin/env python3
"""Python SDK benchmarks (issue 5), side by side in one run, medians.

1. ``overhead``: per-frame cost of a DrawingLayer running the design's
   Example 1 code vs the same circle drawn by a Rust closure, at 1080p
   (each in its own stream into ``null:``; the compositor times each layer).
2. ``e2e``: the design's Example 1 end to end — 1080p30 animated circle →
   H.264 (4 Mb/s) → 2 s HLS segments, as fast as possible — vs the PyAV +
   skia-python anchor (``bench/hls/pyav_skia_hls.py``, libx264 ultrafast),
   both as tuned (one skia surface over a numpy array) and with the
   design's ``compose_frame`` as written (``--per-frame-surface``).
   Our side also runs the anchor's exact picture (ball + "frame N" text on
   #203050) as a DrawingLayer, so the drawing is the same on both sides.

    python bench/python/bench_sdk.py [--runs 3] [--frames 300] [--preset fast] [--anchor-python bench/.venv/bin/python] [--json]

Run it with the interpreter that has streamkit installed (a release build:
``maturin build --release`` then ``pip install`` the wheel).
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from streamkit import DrawingLayer, HLSSink, Stream

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.path.join(HERE, "..", "hls", "pyav_skia_hls.py")
#: Our encoder preset; --preset sets it (the anchor runs x264's ultrafast).
PRESET = "fast"

EXAMPLE1 = '''
import math

def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True)
    paint.setColor(skia.ColorBLUE)

    # Animated circle
    x = 960 + 400 * math.cos(ctx.time * 2)
    y = 540 + 400 * math.sin(ctx.time * 2)
    canvas.drawCircle(x, y, 50, paint)
'''

# bench/hls/pyav_skia_hls.py's picture, as draw code.
ANCHOR_PICTURE = '''
import math
W, H, R = 1920, 1080, 20
ball = skia.Paint(AntiAlias=True, Color=skia.ColorWHITE)
text = skia.Paint(AntiAlias=True, Color=skia.ColorWHITE)
font = skia.Font(None, 48)
background = skia.Color(0x20, 0x30, 0x50)

def draw(canvas, ctx):
    n = ctx.frame_number
    canvas.clear(background)
    x = R + (0.5 + 0.5 * math.sin(2 * math.pi * n / 200)) * (W - 2 * R)
    y = R + (0.5 + 0.5 * math.sin(2 * math.pi * math.sqrt(2) * n / 200)) * (H - 2 * R)
    canvas.drawCircle(x, y, R, ball)
    canvas.drawString(f"frame {n}", 40, 78, font, text)
'''


def overhead_once(kind, frames):
    stream = Stream(sink="null:", width=1920, height=1080, fps=30, realtime=False, frames=frames)
    if kind in ("shim", "skia-python"):
        stream.add_layer(DrawingLayer("circle", 0, draw_code=EXAMPLE1, backend=kind))
    else:
        stream._native.add_rust_circle_layer("circle", 0)
    report = asyncio.run(stream.run())
    return report["stats"]["stage_ms"]["layer:circle"]


def e2e_once(code, frames, out_dir):
    stream = Stream(sink=HLSSink(out_dir, segment_duration=2, bitrate=4_000_000, playlist_size=0, preset=PRESET),
                    width=1920, height=1080, fps=30, realtime=False, frames=frames)
    layer = stream.add_layer(DrawingLayer("animation", 0, draw_code=code))
    cpu, started = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    report = asyncio.run(stream.run())
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu
    assert report["frames"] == frames and layer.error_count == 0, (report, layer.last_error)
    return frames / seconds, 1000 * cpu / frames


def cpu_seconds(who):
    """User + system time of this process's threads (or of reaped children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def anchor_once(python, frames, out_dir, design=False):
    """One anchor run; ``design``: the design's ``compose_frame`` as written
    (a new skia surface and a snapshot copy per frame)."""
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    command = [python, ANCHOR, out_dir, "--frames", str(frames), "--bitrate", "4000000"]
    result = subprocess.run(command + (["--per-frame-surface"] if design else []),
                            capture_output=True, text=True, check=True)
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu  # whole process, start-up included
    return json.loads(result.stdout.strip().splitlines()[-1])["fps"], 1000 * cpu / frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--overhead-frames", type=int, default=600)
    parser.add_argument("--anchor-python", default=os.path.join(HERE, "..", ".venv", "bin", "python"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--preset", default="fast", choices=("fast", "medium", "slow"),
                        help="our encoder preset (default fast: the anchor runs x264's ultrafast)")
    args = parser.parse_args()
    global PRESET
    PRESET = args.preset
    results = {"python_layer_ms": [], "rust_layer_ms": [], "example1_fps": [], "anchor_picture_fps": [], "pyav_fps": [],
               "skia_python_layer_ms": [], "example1_cpu_ms": [], "anchor_picture_cpu_ms": [], "pyav_cpu_ms": [],
               "pyav_design_fps": [], "pyav_design_cpu_ms": []}
    have_anchor = os.path.exists(args.anchor_python)
    try:
        import skia  # noqa: F401  (the optional skia-python backend)
        have_skia_python = True
    except ImportError:
        have_skia_python = False
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):  # interleaved, so drift in machine load hits every side alike
            results["python_layer_ms"].append(overhead_once("shim", args.overhead_frames))
            if have_skia_python:
                results["skia_python_layer_ms"].append(overhead_once("skia-python", args.overhead_frames))
            results["rust_layer_ms"].append(overhead_once("rust", args.overhead_frames))
            for key, measure in (
                ("example1", lambda: e2e_once(EXAMPLE1, args.frames, os.path.join(tmp, f"ex1-{run}"))),
                ("anchor_picture", lambda: e2e_once(ANCHOR_PICTURE, args.frames, os.path.join(tmp, f"pic-{run}"))),
                ("pyav", lambda: anchor_once(args.anchor_python, args.frames, os.path.join(tmp, f"pyav-{run}"))),
                ("pyav_design",
                 lambda: anchor_once(args.anchor_python, args.frames, os.path.join(tmp, f"pyd-{run}"), design=True)),
            ):
                if key.startswith("pyav") and not have_anchor:
                    continue
                fps, cpu_ms = measure()
                results[f"{key}_fps"].append(fps)
                results[f"{key}_cpu_ms"].append(cpu_ms)
    median = {k: statistics.median(v) for k, v in results.items() if v}
    summary = dict(median)
    summary["python_overhead_ms"] = median["python_layer_ms"] - median["rust_layer_ms"]
    if "pyav_fps" in median:
        summary["example1_vs_pyav"] = median["example1_fps"] / median["pyav_fps"]
        summary["same_picture_vs_pyav"] = median["anchor_picture_fps"] / median["pyav_fps"]
        summary["pyav_cpu_vs_example1"] = median["pyav_cpu_ms"] / median["example1_cpu_ms"]
        summary["example1_vs_pyav_design"] = median["example1_fps"] / median["pyav_design_fps"]
    summary["runs"] = results
    if args.json:
        print(json.dumps(summary))
        return
    print(f"DrawingLayer (Example 1 code) {median['python_layer_ms']:.3f} ms/frame, Rust closure "
          f"{median['rust_layer_ms']:.3f} ms/frame: Python overhead {summary['python_overhead_ms']:.3f} ms/frame (1080p)")
    if "skia_python_layer_ms" in median:
        print(f"The same code with backend='skia-python' (real skia, blended from its buffer): "
              f"{median['skia_python_layer_ms']:.3f} ms/frame")
    print(f"Example 1 → H.264 → HLS, 1080p, {args.frames} frames: {median['example1_fps']:.1f} fps "
          f"({median['example1_cpu_ms']:.1f} CPU ms/frame); anchor's picture: {median['anchor_picture_fps']:.1f} fps "
          f"({median['anchor_picture_cpu_ms']:.1f} CPU ms/frame)")
    if "pyav_fps" in median:
        print(f"PyAV + skia-python anchor: {median['pyav_fps']:.1f} fps ({median['pyav_cpu_ms']:.1f} CPU ms/frame) → "
              f"Example 1 {summary['example1_vs_pyav']:.2f}x, same picture {summary['same_picture_vs_pyav']:.2f}x; "
              f"CPU per frame {summary['pyav_cpu_vs_example1']:.2f}x less")
        print(f"The anchor with the design's compose_frame as written (new surface + snapshot per frame): "
              f"{median['pyav_design_fps']:.1f} fps → Example 1 {summary['example1_vs_pyav_design']:.2f}x")
    else:
        print(f"(no anchor: {args.anchor_python} missing; see bench/README.md)")


if __name__ == "__main__":
    main()
