"""Frames between numpy and the engine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class TimestampedFrame:
    """A frame with its timing (the design's TimestampedFrame).

    ``frame`` is an ``(height, width, 4)`` uint8 RGBA array (``(h, w, 3)`` RGB
    and ``(h, w)`` gray are accepted too). Times are nanoseconds.
    """

    frame: np.ndarray
    pts: Optional[int] = None
    capture_time: Optional[int] = None
    ptp_time: Optional[int] = None
    frame_number: Optional[int] = None
    sync_source: Optional[str] = None
    drift_ns: int = 0


def as_engine_array(array) -> tuple[np.ndarray, str]:
    """A packed uint8 array the engine can wrap without copying, and its format.

    RGBA ``(h, w, 4)`` C-contiguous uint8 is used as is (zero-copy); RGB gets
    an alpha channel and other layouts a contiguous copy (the only copies).
    RGBA is taken as premultiplied, which is the same thing for opaque pixels.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 arrays, got {array.dtype}")
    if array.ndim == 2:
        return np.ascontiguousarray(array), "gray8"
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"frames must have shape (height, width, 4), (height, width, 3) or (height, width); got {array.shape}")
    if array.shape[2] == 3:
        rgba = np.empty(array.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = array
        rgba[..., 3] = 255
        return rgba, "rgba"
    return np.ascontiguousarray(array), "rgba"


def normalise(value):
    """(array, format, pts_ns, capture_ns, ptp_ns, frame_number) from what
    ``next_frame`` returned: an array or a TimestampedFrame."""
    if isinstance(value, TimestampedFrame):
        array, fmt = as_engine_array(value.frame)
        capture = value.capture_time
        if isinstance(capture, float):  # seconds, as time.monotonic() gives
            capture = int(capture * 1e9)
        ptp = value.ptp_time
        if isinstance(ptp, float):
            ptp = int(ptp * 1e9)
        return array, fmt, value.pts, capture, ptp, value.frame_number
    array, fmt = as_engine_array(value)
    return array, fmt, None, time.monotonic_ns(), None, None
