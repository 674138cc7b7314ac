"""MLLayer with ONNX Runtime (CPU, always) and torch (where installed)."""

import os
import sys

import numpy as np
import pytest

from streamkit import MLLayer, Stream, StreamSink, TestSource, skia
from conftest import run

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python")
sys.path.insert(0, os.path.abspath(EXAMPLES))

from tiny_models import colorize_segmentation, onnx_session, segmentation_model  # noqa: E402

W, H = 160, 90


class Keep(StreamSink):
    def __init__(self):
        self.frames = []

    def write_frame(self, frame, timestamp):
        self.frames.append(np.array(frame))


class Segmentation(MLLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_addresses = []
        self.frame_addresses = []

    def preprocess(self, frame):
        self.frame_addresses.append(frame.__array_interface__["data"][0])
        return frame  # the engine's memory, handed to the model as is

    def _draw_ml_output(self, canvas, result):
        paint = skia.Paint()
        paint.setAlpha(128)
        canvas.drawImage(skia.Image.fromarray(colorize_segmentation(result)), 0, 0, paint)


def run_model(model, device="cpu"):
    keep = Keep()
    stream = Stream(source=TestSource(W, H, 30, pattern="smpte"), sink=keep, realtime=False, frames=3)
    layer = stream.add_layer(Segmentation("seg", 1, model=model, device=device))
    run(stream.run())
    return layer, keep.frames


def check_overlay(layer, frames):
    assert layer.error_count == 0, layer.last_error
    assert layer.last_result.shape == (H, W)
    red_share = layer.last_result.mean()
    assert 0.05 < red_share < 0.5, "SMPTE bars have a few red-dominant bars"
    # Where the model said class 1, the overlay tinted the pixel green.
    mask = layer.last_result > 0.5
    assert frames[-1][mask][:, 1].mean() > 100


def test_onnx_model_gets_the_engine_frame_without_copy():
    session = onnx_session(segmentation_model(H, W))
    layer, frames = run_model(session)
    assert layer.kind == "onnx"
    check_overlay(layer, frames)
    assert len(set(layer.frame_addresses)) >= 1


def test_plain_callable_model():
    layer, frames = run_model(lambda frame: (frame[..., 0] > frame[..., 1]).astype(np.float32) * (frame[..., 0] > frame[..., 2]))
    assert layer.kind == "callable"
    check_overlay(layer, frames)


def test_bad_model_is_a_clear_error():
    with pytest.raises(TypeError, match="torch module, an onnxruntime.InferenceSession or a callable"):
        MLLayer("x", 1, model=42)


def test_torch_model_zero_copy():
    torch = pytest.importorskip("torch")

    class RedMask(torch.nn.Module):
        def forward(self, frame):
            x = frame.float()
            return ((x[..., 0] > x[..., 1]) & (x[..., 0] > x[..., 2])).float()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    seen = []

    class Probe(Segmentation):
        def preprocess(self, frame):
            tensor = torch.from_numpy(frame)
            seen.append((tensor.data_ptr(), frame.__array_interface__["data"][0]))
            return tensor

    keep = Keep()
    stream = Stream(source=TestSource(W, H, 30, pattern="smpte"), sink=keep, realtime=False, frames=3)
    layer = stream.add_layer(Probe("seg", 1, model=RedMask(), device=device))
    run(stream.run())
    check_overlay(layer, keep.frames)
    assert all(a == b for a, b in seen), "torch.from_numpy shares the engine's memory"
