"""DrawingLayer: the design's draw code unchanged, errors with user line numbers, update_code."""

import asyncio
import math

import numpy as np
import pytest

from streamkit import DrawingLayer, Stream, StreamSink, skia
from conftest import EXAMPLE1_CODE, EXAMPLE2_CODE, EXAMPLE6_CODE, run


class Keep(StreamSink):
    """Keeps a copy of every frame."""

    def __init__(self):
        self.frames = []

    async def write_frame(self, frame, timestamp):
        self.frames.append((timestamp, np.array(frame)))


def render(code, frames=1, size=(1920, 1080), layer_id="layer"):
    keep = Keep()
    stream = Stream(sink=keep, width=size[0], height=size[1], fps=30, realtime=False, frames=frames)
    layer = stream.add_layer(DrawingLayer(layer_id, z_index=0, draw_code=code))
    report = run(stream.run())
    return keep.frames, layer, report


def test_example1_code_draws_the_animated_circle():
    frames, layer, report = render(EXAMPLE1_CODE, frames=16)
    assert layer.error_count == 0 and layer.renders == 16
    for timestamp, pixels in (frames[0], frames[15]):
        x = 960 + 400 * math.cos(timestamp * 2)
        y = 540 + 400 * math.sin(timestamp * 2)
        assert pixels[round(y), round(x)].tolist() == [0, 0, 255, 255], "blue at the centre"
        assert pixels[round(y), round(x) + 60].tolist() == [0, 0, 0, 255], "black outside the radius"
    assert frames[0][0] == 0.0 and abs(frames[15][0] - 0.5) < 1e-6


def test_example2_and_example6_overlays_draw_text():
    frames, layer, _ = render(EXAMPLE2_CODE)
    region = frames[0][1][80:105, 100:400]
    assert layer.error_count == 0
    assert (region[..., 0] > 200).sum() > 30 and region[..., 1].max() < 60, "red 12px text (skia's default size)"
    frames, layer, _ = render(EXAMPLE6_CODE)
    region = frames[0][1][60:105, 50:400]
    assert layer.error_count == 0
    assert (region.min(axis=2) > 200).sum() > 200, "white 48px text"


def test_errors_report_the_user_line_and_the_stream_goes_on(capfd):
    code = "def draw(canvas, ctx):\n    paint = skia.Paint()\n    if ctx.frame_number % 2:\n        x = undefined_name\n    canvas.drawCircle(10, 10, 5, paint)\n"
    frames, layer, report = render(code, frames=10, size=(64, 64), layer_id="buggy")
    assert len(frames) == 10 and report["frames"] == 10
    assert layer.error_count == 5 and layer.renders == 5
    assert layer.last_error.startswith("<draw_code:buggy> line 4, in draw: NameError"), layer.last_error
    assert report["stats"]["layer_errors"] == {"buggy": 5}
    assert "<draw_code:buggy> line 4" in capfd.readouterr().err, "logged on stderr too"


def test_syntax_errors_raise_at_construction_with_the_line():
    with pytest.raises(SyntaxError) as info:
        DrawingLayer("bad", 0, draw_code="def draw(canvas, ctx):\n    pass\n  oops(\n")
    assert info.value.lineno == 3 and info.value.filename == "<draw_code:bad>"
    with pytest.raises(ValueError, match="must define draw"):
        DrawingLayer("nodraw", 0, draw_code="x = 1\n")


def test_update_code_while_running():
    blue = "def draw(canvas, ctx):\n    canvas.drawPaint(skia.Paint(Color=skia.ColorBLUE))\n"
    red = "def draw(canvas, ctx):\n    canvas.drawPaint(skia.Paint(Color=skia.ColorRED))\n"

    async def main():
        keep = Keep()
        stream = Stream(sink=keep, width=32, height=32, fps=200, realtime=True)
        layer = stream.add_layer(DrawingLayer("paint", 0, draw_code=blue))
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(0.3)
        with pytest.raises(SyntaxError):
            layer.update_code("def draw(:\n")
        layer.update_code(red)
        await asyncio.sleep(0.3)
        await stream.stop()
        await task
        return [f[1][0, 0].tolist() for f in keep.frames]

    colors = run(main())
    first_red = colors.index([255, 0, 0, 255])
    assert first_red > 5 and all(c == [0, 0, 255, 255] for c in colors[:first_red])
    assert all(c == [255, 0, 0, 255] for c in colors[first_red:])


def test_ctx_by_attribute_and_by_key():
    code = """
seen = []
def draw(canvas, ctx):
    assert ctx['time'] == ctx.time and ctx['fps'] == ctx.fps == 30.0
    assert (ctx.width, ctx.height) == (ctx['width'], ctx['height']) == (48, 32)
    assert ctx.frame is None and 'frame' not in ctx and ctx['frame'] is None
    assert ctx.frame_number == ctx['frame_number']
    with_missing = ctx.get('nope', 7)
    assert with_missing == 7
    try:
        ctx['nope']
    except KeyError as e:
        assert 'time' in str(e)
    else:
        raise AssertionError('KeyError expected')
"""
    _, layer, _ = render(code, frames=3, size=(48, 32))
    assert layer.error_count == 0, layer.last_error


def test_skia_subset():
    code = """
def draw(canvas, ctx):
    canvas.clear(skia.ColorBLACK)
    paint = skia.Paint(AntiAlias=False, Color=skia.Color(0, 255, 0))
    canvas.drawRect(skia.Rect.MakeXYWH(0, 0, 10, 10), paint)
    stroke = skia.Paint(Color=skia.ColorWHITE, Style=skia.Paint.kStroke_Style, StrokeWidth=2)
    canvas.drawLine(20, 0, 20, 40, stroke)
    path = skia.Path()
    path.moveTo(40, 0).lineTo(60, 0).lineTo(60, 20).close()
    canvas.drawPath(path, skia.Paint(Color=skia.ColorYELLOW))
    canvas.save()
    canvas.translate(70, 0)
    canvas.drawRect(skia.Rect(0, 0, 10, 10), skia.Paint(Color=skia.ColorCYAN))
    canvas.restore()
    half = skia.Paint(Color=skia.ColorRED)
    half.setAlpha(128)
    canvas.drawRect(skia.Rect.MakeLTRB(0, 30, 10, 40), half)
    font = skia.Font(skia.Typeface('Arial'), 20)
    assert font.measureText('Hi') > 10
    canvas.drawString('Hi', 0, 70, font, skia.Paint(Color=skia.ColorWHITE))
    canvas.drawImage(IMAGE, 80, 40)
    canvas.drawOval(skia.Rect(30, 50, 50, 70), skia.Paint(Color=skia.ColorMAGENTA))
"""
    image = np.zeros((8, 8, 4), np.uint8)
    image[...] = (10, 20, 30, 255)
    layer = DrawingLayer("skia", 0, draw_code=code)
    layer._draw.__globals__["IMAGE"] = skia.Image.fromarray(image)
    keep = Keep()
    stream = Stream(sink=keep, width=100, height=80, fps=30, realtime=False, frames=1)
    stream.add_layer(layer)
    run(stream.run())
    px = keep.frames[0][1]
    assert layer.error_count == 0, layer.last_error
    assert px[5, 5].tolist() == [0, 255, 0, 255]
    assert px[20, 20].tolist()[:3] == [255, 255, 255]
    assert px[2, 58].tolist() == [255, 255, 0, 255]
    assert px[5, 75].tolist() == [0, 255, 255, 255]
    assert abs(px[35, 5, 0] - 128) <= 2 and px[35, 5, 3] == 255
    assert px[60:72, 0:20].max() == 255, "text drawn"
    assert px[44, 84].tolist() == [10, 20, 30, 255]
    assert px[60, 40].tolist() == [255, 0, 255, 255]


def test_a_canvas_kept_after_render_is_revoked():
    code = "kept = []\ndef draw(canvas, ctx):\n    kept.append(canvas)\n"
    layer = DrawingLayer("keep", 0, draw_code=code)
    stream = Stream(sink="null:", width=16, height=16, realtime=False, frames=1)
    stream.add_layer(layer)
    run(stream.run())
    canvas = layer._draw.__globals__["kept"][0]
    with pytest.raises(RuntimeError, match="finished render"):
        canvas.drawCircle(1, 1, 1, skia.Paint())


def test_unsupported_skia_calls_say_so():
    with pytest.raises(TypeError, match="unsupported property 'Shader'"):
        skia.Paint(Shader=None)
    with pytest.raises(AttributeError):
        skia.GradientShader


def test_test_source_draw_func_generates_frames():
    def draw(canvas, ctx):
        canvas.drawRect(skia.Rect.MakeXYWH(0, 0, 4, 4), skia.Paint(Color=skia.Color(0, 0, 200)))

    keep = Keep()
    from streamkit import TestSource
    run(Stream(source=TestSource(16, 16, 30, draw), sink=keep, realtime=False, frames=2).run())
    assert keep.frames[1][1][1, 1].tolist() == [0, 0, 200, 255]
    assert keep.frames[1][1][8, 8].tolist() == [0, 0, 0, 255]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # skia-python's "Default font"
def test_skia_python_backend_draws_through_the_real_skia(tmp_path):
    real_skia = pytest.importorskip("skia")
    assert real_skia is not skia
    code = """
def draw(canvas, ctx):
    paint = skia.Paint(AntiAlias=True, Color=skia.ColorRED)
    paint.setAlpha(128)
    canvas.drawRect(skia.Rect.MakeXYWH(0, 0, 16, 16), paint)
    font = skia.Font(None, 20)
    canvas.drawString("skia", 20, 30, font, skia.Paint(Color=skia.ColorWHITE))
"""
    keep = Keep()
    stream = Stream(source="test:solid?size=64x48&color=%230000ff", sink=keep, realtime=False, frames=2)
    layer = stream.add_layer(DrawingLayer("real", 1, draw_code=code, backend="skia-python"))
    run(stream.run())
    assert layer.error_count == 0, layer.last_error
    px = keep.frames[1][1]
    assert abs(int(px[8, 8, 0]) - 128) <= 2 and abs(int(px[8, 8, 2]) - 127) <= 2, px[8, 8]
    assert px[10:32, 20:64].min(axis=2).max() > 200, "white text"
    assert px[40, 60].tolist() == [0, 0, 255, 255]
