"""A skia-python compatible namespace over streamkit's Rust canvas.

Draw code written for skia-python (``skia.Paint(AntiAlias=True)``,
``canvas.drawCircle(...)``, ``skia.ColorBLUE``) runs unchanged against it;
``DrawingLayer`` injects it as ``skia`` into the code's globals, so no
skia-python install is needed. Only the subset below exists; anything else
raises AttributeError naming what is missing.
"""

from ._native import Canvas, Font, Image, Paint, Path, Rect, Typeface

__all__ = [
    "Canvas", "Font", "Image", "Paint", "Path", "Rect", "Typeface",
    "Color", "ColorSetARGB", "ColorSetRGB", "ColorGetA", "ColorGetR", "ColorGetG", "ColorGetB",
    "DashPathEffect",
]

ColorTRANSPARENT = 0x00000000
ColorBLACK = 0xFF000000
ColorDKGRAY = 0xFF444444
ColorGRAY = 0xFF888888
ColorLTGRAY = 0xFFCCCCCC
ColorWHITE = 0xFFFFFFFF
ColorRED = 0xFFFF0000
ColorGREEN = 0xFF00FF00
ColorBLUE = 0xFF0000FF
ColorYELLOW = 0xFFFFFF00
ColorCYAN = 0xFF00FFFF
ColorMAGENTA = 0xFFFF00FF


def Color(r: int, g: int, b: int, a: int = 255) -> int:
    """skia.Color(r, g, b, a=255) → 0xAARRGGBB."""
    return ((a & 0xFF) << 24) | ((r & 0xFF) << 16) | ((g & 0xFF) << 8) | (b & 0xFF)


def ColorSetARGB(a: int, r: int, g: int, b: int) -> int:
    return Color(r, g, b, a)


def ColorSetRGB(r: int, g: int, b: int) -> int:
    return Color(r, g, b)


def ColorGetA(color: int) -> int:
    return (color >> 24) & 0xFF


def ColorGetR(color: int) -> int:
    return (color >> 16) & 0xFF


def ColorGetG(color: int) -> int:
    return (color >> 8) & 0xFF


def ColorGetB(color: int) -> int:
    return color & 0xFF


class DashPathEffect:
    """``paint.setPathEffect(skia.DashPathEffect.Make([on, off], phase))``."""

    def __init__(self, intervals, phase=0.0):
        self.intervals = list(intervals)
        self.phase = phase

    @staticmethod
    def Make(intervals, phase=0.0):
        return DashPathEffect(intervals, phase)
