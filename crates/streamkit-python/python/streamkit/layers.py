"""Layers: Python subclasses, drawing code, ML models, and URI layers."""

from __future__ import annotations

import math
from typing import Any, Optional

from . import skia as _skia
from ._errors import DRAW_CODE_PREFIX


class Layer:
    """Base for layers written in Python: override ``render(canvas, ctx)``.

    ``render`` may be ``async def`` (it then runs on the asyncio loop that
    awaits ``Stream.run()``) or a plain ``def`` (called on the compositor's
    thread, cheaper). ``canvas`` is the skia-style canvas (``streamkit.skia``),
    valid during the call only; ``ctx`` has ``time``, ``fps``, ``frame``
    (a read-only numpy view of the source frame), ``frame_number``,
    ``width``, ``height`` (also ``ctx['time']``).
    """

    def __init__(self, layer_id: str, z_index: int = 0, opacity: float = 1.0):
        self.layer_id = layer_id
        self.z_index = z_index
        self.opacity = opacity
        self._handle = None

    def render(self, canvas, ctx) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define render(self, canvas, ctx)")

    def _target(self):
        """The callable the engine calls for each frame."""
        return self.render

    def _attach(self, native) -> None:
        self._handle = native.add_python_layer(self.layer_id, self.z_index, self._target(), self.opacity)

    @property
    def error_count(self) -> int:
        """Frames on which this layer raised (it was skipped on those)."""
        return self._handle.error_count if self._handle else 0

    @property
    def last_error(self) -> Optional[str]:
        """The last error, with the file and line in the user's code."""
        return self._handle.last_error if self._handle else None

    @property
    def renders(self) -> int:
        """Frames rendered without error."""
        return self._handle.renders if self._handle else 0


def compile_draw_code(code: str, layer_id: str, skia_module=_skia):
    """Compiles drawing code defining ``draw(canvas, ctx)`` with ``skia`` and
    ``math`` in its globals; errors carry the code's own line numbers."""
    filename = f"{DRAW_CODE_PREFIX}{layer_id}>"
    compiled = compile(code, filename, "exec")
    namespace = {"skia": skia_module, "math": math, "__name__": f"draw_code_{layer_id}"}
    exec(compiled, namespace)
    draw = namespace.get("draw")
    if not callable(draw):
        raise ValueError(f"draw code for layer '{layer_id}' must define draw(canvas, ctx)")
    return draw


class DrawingLayer(Layer):
    """Python drawing code run every frame: the design's DrawingLayer.

    ``draw_code`` defines ``draw(canvas, ctx)`` and uses the skia-python API.
    With ``backend='shim'`` (default) ``skia`` is ``streamkit.skia``, backed by
    the Rust canvas (no skia-python needed). With ``backend='skia-python'``
    the code gets the real ``skia`` module and a skia-python canvas over a
    numpy buffer that the engine blends onto the frame in place (no copy;
    needs ``pip install skia-python``). An exception is reported with the
    code's line number and skips the layer for that frame; ``update_code``
    swaps the code while the stream runs.
    """

    def __init__(self, layer_id: str, z_index: int = 0, draw_code: str = "", opacity: float = 1.0,
                 backend: str = "shim"):
        super().__init__(layer_id, z_index, opacity)
        if backend not in ("shim", "skia-python"):
            raise ValueError(f"backend={backend!r}: use 'shim' (streamkit's canvas) or 'skia-python'")
        self.backend = backend
        self._skia = _skia
        if backend == "skia-python":
            try:
                import skia as skia_python
            except ImportError as e:
                raise ImportError("DrawingLayer(backend='skia-python') needs skia-python: pip install skia-python") from e
            self._skia = skia_python
        self._pixels = None
        self._surface = None
        self.draw_code = draw_code
        self._draw = compile_draw_code(draw_code, layer_id, self._skia)

    def update_code(self, draw_code: str) -> None:
        """Replaces the drawing code from the next frame on. A syntax error
        raises here and keeps the old code running."""
        draw = compile_draw_code(draw_code, self.layer_id, self._skia)
        self.draw_code, self._draw = draw_code, draw
        if self._handle is not None:
            self._handle.set_target(self._target())

    def _target(self):
        return self._draw if self.backend == "shim" else self._render_with_skia_python

    def render(self, canvas, ctx):
        return self._target()(canvas, ctx)

    def _render_with_skia_python(self, canvas, ctx):
        skia = self._skia
        if self._pixels is None or self._pixels.shape[:2] != (ctx.height, ctx.width):
            import numpy as np

            self._pixels = np.zeros((ctx.height, ctx.width, 4), np.uint8)
            self._surface = skia.Surface(self._pixels, colorType=skia.kRGBA_8888_ColorType,
                                         alphaType=skia.kPremul_AlphaType)
        surface_canvas = self._surface.getCanvas()
        surface_canvas.clear(skia.ColorTRANSPARENT)
        self._draw(surface_canvas, ctx)
        self._surface.flushAndSubmit()
        canvas.blendArray(self._pixels)


class MLLayer(Layer):
    """Runs a model on every source frame and draws its output.

    ``model`` is a torch module (moved to ``device``; the frame reaches it
    through ``torch.from_numpy`` without a copy, under ``torch.no_grad()``),
    an ONNX Runtime ``InferenceSession`` (fed the frame array itself), or any
    callable taking the frame array. Override ``preprocess(frame)`` to shape
    the input and ``_draw_ml_output(canvas, result)`` to draw the result.
    """

    def __init__(self, layer_id: str, z_index: int = 0, model: Any = None, device: str = "cpu", opacity: float = 1.0):
        super().__init__(layer_id, z_index, opacity)
        self.device = device
        self.kind = _model_kind(model)
        self.model = model.to(device) if self.kind == "torch" else model
        self.last_result = None

    def preprocess(self, frame):
        """The model's input from the frame array (default: the frame as is)."""
        return frame

    def infer(self, frame):
        """The model's output for one frame, as a numpy array."""
        x = self.preprocess(frame)
        if self.kind == "torch":
            import torch

            tensor = torch.from_numpy(x) if not isinstance(x, torch.Tensor) else x
            with torch.no_grad():
                output = self.model(tensor.to(self.device))
            return output.cpu().numpy()
        if self.kind == "onnx":
            name = self.model.get_inputs()[0].name
            return self.model.run(None, {name: x})[0]
        return self.model(x)

    # A plain def: inference runs on the compositor's thread, not the asyncio
    # loop (ONNX Runtime and torch release the GIL while they compute).
    def render(self, canvas, ctx):
        frame = ctx.frame
        if frame is None:
            return
        result = self.infer(frame)
        self.last_result = result
        self._draw_ml_output(canvas, result)

    def _draw_ml_output(self, canvas, result) -> None:
        """Draws the model's output; the default draws nothing."""


def _model_kind(model) -> str:
    module = type(model).__module__ or ""
    if module.startswith("torch") or (hasattr(model, "parameters") and hasattr(model, "to") and hasattr(model, "eval")):
        return "torch"
    if hasattr(model, "get_inputs") and hasattr(model, "run"):
        return "onnx"
    if callable(model):
        return "callable"
    raise TypeError("MLLayer model must be a torch module, an onnxruntime.InferenceSession or a callable")


class URILayer(Layer):
    """A Rust layer named by a URI: ``URILayer('text:Hello {frame}?size=48')``,
    ``'clock:'``, ``'image:logo.png?pos=top-right'``, ``'video:test:ball'``."""

    def __init__(self, uri: str, layer_id: Optional[str] = None, z_index: Optional[int] = None, opacity: Optional[float] = None):
        super().__init__(layer_id or uri.split(":", 1)[0], z_index if z_index is not None else 1)
        self.uri = uri
        self._explicit = (layer_id, z_index, opacity)

    def _attach(self, native) -> None:
        layer_id, z_index, opacity = self._explicit
        self.layer_id = native.add_uri_layer(self.uri, layer_id, z_index, opacity)
