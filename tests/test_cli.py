import subprocess
import sys

from floodwatch import __version__


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "floodwatch", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == __version__
    out = subprocess.run([sys.executable, "-m", "floodwatch", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "floodwatch" in out.stdout
