import subprocess
import sys

from floodwatch import __version__


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "floodwatch", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == __version__
    out = subprocess.run([sys.executable, "-m", "floodwatch", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "floodwatch" in out.stdout


def test_usage_errors_are_one_line_naming_the_help():
    """What the command line itself catches (unknown option, missing option, value out of range) is one line
    on stderr with exit 2, like every other bad input; a bare `floodwatch` prints its help."""
    cases = [(["map", "--bogus"], "No such option: --bogus"), (["map", "x.tif"], "Missing option '-o'"),
             (["infer", "x.tif", "-o", "o", "--downsample", "0"], "--downsample")]
    for argv, named in cases:
        out = subprocess.run([sys.executable, "-m", "floodwatch", *argv], capture_output=True, text=True)
        err = out.stderr.strip()
        assert out.returncode == 2 and len(err.splitlines()) == 1, err
        assert err.startswith("error: ") and named in err and f"{argv[0]} --help" in err, err
    out = subprocess.run([sys.executable, "-m", "floodwatch"], capture_output=True, text=True)
    assert out.returncode == 2 and "Commands" in out.stdout + out.stderr


def test_operating_system_failures_no_check_foresaw_are_one_line(monkeypatch, capsys, tmp_path):
    import pytest
    from rasterio.errors import RasterioIOError

    import floodwatch.data.inspect
    from floodwatch.cli.main import main

    (tmp_path / "d").mkdir()
    for exc, named in ((PermissionError(13, "Permission denied", "/srv/x.tif"), "/srv/x.tif: Permission denied"),
                       (RasterioIOError("x.tif: TIFFReadDirectory failed"), "x.tif: TIFFReadDirectory failed"),
                       (TimeoutError(), "TimeoutError")):
        def fail(*args, exc=exc, **kwargs):
            raise exc
        monkeypatch.setattr(floodwatch.data.inspect, "inspect_dataset", fail)
        with pytest.raises(SystemExit) as code:
            main(["data", "inspect", str(tmp_path / "d")])
        err = capsys.readouterr().err.strip()
        assert code.value.code == 2 and err == f"error: {named}" and "Traceback" not in err
