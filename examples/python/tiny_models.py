"""Tiny ONNX models for the ML examples and tests, built with the `onnx`
helper package (no download): they take the frame itself, an (H, W, 4)
uint8 RGBA array, so the frame reaches ONNX Runtime without a copy."""

import numpy as np


def segmentation_model(height: int, width: int) -> bytes:
    """A 'segmentation' model: class 1 where red > green and red > blue, else 0.
    Input ``frame`` uint8 [H, W, 4]; output ``mask`` float32 [H, W]."""
    import onnx
    from onnx import TensorProto, helper

    def const(name, values, dtype=np.int64):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", TensorProto.INT64 if dtype == np.int64 else TensorProto.FLOAT, [len(values)], values))

    nodes = [
        helper.make_node("Cast", ["frame"], ["f"], to=TensorProto.FLOAT),
        const("axes", [2]),
        const("s0", [0]), const("e0", [1]),
        const("s1", [1]), const("e1", [2]),
        const("s2", [2]), const("e2", [3]),
        helper.make_node("Slice", ["f", "s0", "e0", "axes"], ["r"]),
        helper.make_node("Slice", ["f", "s1", "e1", "axes"], ["g"]),
        helper.make_node("Slice", ["f", "s2", "e2", "axes"], ["b"]),
        helper.make_node("Greater", ["r", "g"], ["rg"]),
        helper.make_node("Greater", ["r", "b"], ["rb"]),
        helper.make_node("And", ["rg", "rb"], ["red"]),
        helper.make_node("Cast", ["red"], ["redf"], to=TensorProto.FLOAT),
        helper.make_node("Squeeze", ["redf", "axes"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_segmentation",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, [height, width, 4])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [height, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_session(model_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small model, 2-core machines: threads cost more than they save
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def colorize_segmentation(mask: np.ndarray) -> np.ndarray:
    """Class 1 → translucent green RGBA, class 0 → transparent."""
    colored = np.zeros(mask.shape + (4,), np.uint8)
    colored[mask > 0.5] = (0, 255, 0, 255)
    return colored
