"""The design's Example 5: an ML layer drawing a segmentation overlay.

The model is a tiny ONNX "segmentation" (red pixels are class 1) run by ONNX
Runtime on the CPU; with ``--torch`` (where torch is installed) the same model
is a torch module on ``--device`` (cuda when available), fed through
``torch.from_numpy`` without a copy, under ``torch.no_grad()``.

    python examples/python/example5_ml_segmentation.py [OUTPUT.mp4] [--torch] [--device cuda]
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_models import colorize_segmentation, onnx_session, segmentation_model  # noqa: E402

from streamkit import FileSink, MLLayer, Stream, TestSource, skia  # noqa: E402

SECONDS = float(os.environ.get("STREAMKIT_EXAMPLE_SECONDS", "10"))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
OUTPUT = args[0] if args else "output/segmentation.mp4"
USE_TORCH = "--torch" in sys.argv
DEVICE = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
WIDTH, HEIGHT = 640, 360


def load_model():
    if not USE_TORCH:
        return onnx_session(segmentation_model(HEIGHT, WIDTH))
    import torch

    class RedMask(torch.nn.Module):
        def forward(self, frame):
            x = frame.float()
            r, g, b = x[..., 0], x[..., 1], x[..., 2]
            return ((r > g) & (r > b)).float()

    return RedMask().eval()


class SegmentationLayer(MLLayer):
    def _draw_ml_output(self, canvas, result):
        # Draw segmentation mask as overlay (the model gives the class per pixel)
        mask = result

        # Color code different classes
        colored_mask = colorize_segmentation(mask)

        # Draw semi-transparent overlay
        paint = skia.Paint(AntiAlias=True)
        paint.setAlpha(128)
        canvas.drawImage(skia.Image.fromarray(colored_mask), 0, 0, paint)


async def main():
    os.makedirs(os.path.dirname(os.path.abspath(OUTPUT)), exist_ok=True)
    model = load_model()

    # Create stream (SMPTE bars stand in for the webcam; a file for the display)
    stream = Stream(source=TestSource(WIDTH, HEIGHT, 30, pattern="smpte"), sink=FileSink(OUTPUT))

    # Add ML layer (zero-copy: the frame array is the engine's memory)
    ml_layer = SegmentationLayer('segmentation', z_index=1, model=model, device=DEVICE)
    stream.add_layer(ml_layer)

    try:
        await asyncio.wait_for(stream.run(), timeout=SECONDS)
    except asyncio.TimeoutError:
        pass
    stats = stream.stats()
    print(f"wrote {OUTPUT}: {stats['frames_out']} frames, model {ml_layer.kind}, "
          f"layer {stats['stage_ms'].get('layer:segmentation', 0):.2f} ms/frame, errors {ml_layer.error_count}")


asyncio.run(main())
