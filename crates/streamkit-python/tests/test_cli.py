"""``python -m streamkit`` is the streamkit command line."""

import subprocess
import sys


def cli(*args):
    return subprocess.run([sys.executable, "-m", "streamkit", *args], capture_output=True, text=True, timeout=120)


def test_list_and_run(tmp_path):
    listed = cli("list")
    assert listed.returncode == 0 and "hls" in listed.stdout and "tcp" in listed.stdout
    out = tmp_path / "out.y4m"
    ran = cli("run", "test:ball?size=64x48", "--frames", "5", "-q", "-o", str(out))
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes().count(b"FRAME\n") == 5


def test_usage_errors_exit_2_and_run_errors_exit_1():
    assert cli("--no-such-flag").returncode == 2
    failed = cli("run", "tset:ball", "-o", "null:")
    assert failed.returncode == 1 and "did you mean 'test:'" in failed.stderr


def test_schemes_from_python():
    import streamkit

    kinds = {(kind, scheme) for kind, scheme, _, _ in streamkit.schemes()}
    assert ("sink", "hls") in kinds and ("source", "test") in kinds
