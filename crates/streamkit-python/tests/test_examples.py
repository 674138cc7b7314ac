"""Every file in examples/python runs (shortened) and writes what it says."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ffprobe_frames

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python"))


def run_example(name, *args, seconds="2", timeout=120, env=None):
    environment = dict(os.environ, STREAMKIT_EXAMPLE_SECONDS=seconds, **(env or {}))
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def segments(folder):
    playlist = (folder / "index.m3u8").read_text()
    return playlist, [line for line in playlist.splitlines() if line.endswith(".ts")]


def test_example1_animated_circle_to_hls(tmp_path):
    output = run_example("example1_animated_circle_hls.py", tmp_path / "stream")
    playlist, ts = segments(tmp_path / "stream")
    assert "#EXT-X-ENDLIST" in playlist and ts, output
    assert "layer errors: 0" in output
    assert ffprobe_frames(tmp_path / "stream" / "index.m3u8") >= 30


def test_example2_overlay_to_file_and_hls(tmp_path):
    run_example("example2_overlay.py", tmp_path)
    assert (tmp_path / "overlay.mp4").stat().st_size > 10_000
    playlist, ts = segments(tmp_path / "hls")
    assert ts


def test_example5_ml_segmentation_onnx(tmp_path):
    output = run_example("example5_ml_segmentation.py", tmp_path / "seg.mp4")
    assert "model onnx" in output and "errors 0" in output, output
    assert int(re.search(r"(\d+) frames", output).group(1)) >= 30, output
    assert (tmp_path / "seg.mp4").stat().st_size > 1_000


def test_example5_ml_segmentation_torch(tmp_path):
    pytest.importorskip("torch")
    output = run_example("example5_ml_segmentation.py", tmp_path / "seg.mp4", "--torch")
    assert "model torch" in output and "errors 0" in output, output


def test_example6_four_processes_over_loopback(tmp_path):
    port = str(21000 + os.getpid() % 1000 * 3)
    output = run_example("example6_distributed.py", "all", tmp_path, seconds="3", timeout=180,
                         env={"STREAMKIT_EXAMPLE_BASE_PORT": port})
    assert "display: 90 frames" in output, output
    playlist, ts = segments(tmp_path / "stream")
    assert "#EXT-X-ENDLIST" in playlist and ts
