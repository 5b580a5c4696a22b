import json
import subprocess
import sys

import pytest

from floodwatch.data.synthetic import write_scene
from floodwatch.errors import DataError, MonitoringError

from monitoring_helpers import WEST_HALF, recorded_store, scene_pair


from typer.testing import CliRunner

from floodwatch.cli import main as cli_main

cli_main._register_all()


class Out:
    def __init__(self, result):
        self.returncode, self.stdout, self.exception = result.exit_code, result.output, result.exception


def fw(*args, env_db=None):
    """In-process run (a subprocess per command would spend seconds importing torch)."""
    env = {"COLUMNS": "200", "FLOODWATCH_DB": str(env_db) if env_db else None}
    return Out(CliRunner().invoke(cli_main.app, [str(a) for a in args], env=env))


def test_aoi_commands(tmp_path):
    db, outputs = recorded_store(tmp_path)
    gj = tmp_path / "aoi.geojson"
    gj.write_text(json.dumps(WEST_HALF))
    out = fw("aoi", "add", "w2", "--geojson", gj, "--threshold-km2", "1", "--webhook", "http://127.0.0.1:9/h",
             "--db", db)
    assert out.returncode == 0, out.exception
    out = fw("aoi", "list", env_db=db)  # database from FLOODWATCH_DB
    assert out.returncode == 0 and "w2" in out.stdout and "west" in out.stdout
    out = fw("aoi", "history", "west", "--png", tmp_path / "h.png", "--db", db)
    assert out.returncode == 0 and "2024-05-13T05:00:00Z" in out.stdout
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    # record an existing map folder again under another time
    folder = next(p for p in outputs.iterdir() if p.is_dir())
    out = fw("aoi", "record", folder, "--acquired", "2024-06-01", "--scene-id", "again", "--db", db)
    assert out.returncode == 0 and "recorded in 3 AOI(s)" in out.stdout  # west, east, w2, out.exception


def test_errors(tmp_path):
    db = tmp_path / "fw.db"
    for args, match in ((("aoi", "history", "nobody", "--db", db), "not found"),
                        (("aoi", "add", "x", "--geojson", tmp_path / "missing.geojson", "--db", db), "not found"),
                        (("aoi", "record", tmp_path, "--acquired", "2024-01-01", "--db", db), "stats.json"),
                        (("change", "--before", tmp_path / "a.tif", "--after", tmp_path / "b.tif", "-o",
                          tmp_path / "o", "--method", "logratio"), "scene not found")):
        out = fw(*args)
        assert isinstance(out.exception, MonitoringError | DataError) and match in str(out.exception), args
    # through the real entry point: one line on stderr, exit 2, no traceback
    proc = subprocess.run([sys.executable, "-m", "floodwatch", "aoi", "history", "nobody", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_change_command_logratio(tmp_path):
    before, after, truth = scene_pair(size=64)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    out = fw("change", "--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif", "-o", tmp_path / "chg",
             "--method", "logratio", "--logratio-threshold", "otsu")
    assert out.returncode == 0, out.exception
    stats = json.loads((tmp_path / "chg" / "stats.json").read_text())
    assert stats["method"] == "logratio" and stats["new_water_pixels"] > 0.5 * truth.sum()
    # -m is not used by the log-ratio, so it is not loaded either (a file that is no model passes)
    (tmp_path / "junk.onnx").write_text("not a model")
    again = fw("change", "--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif", "-o", tmp_path / "chg2",
               "--method", "logratio", "--logratio-threshold", "otsu", "-m", tmp_path / "junk.onnx")
    assert again.returncode == 0, again.exception


@pytest.mark.parametrize("args,named", [
    (["--port", "-5"], "--port"),
    (["--port", "70000"], "--port"),
    (["--outputs", "/nonexistent/floodwatch"], "--outputs"),
    (["--outputs", "{file}"], "--outputs"),  # a regular file, not a folder
    (["--basemap", "ftp://tiles.example/{z}/{x}/{y}.png"], "--basemap"),
    (["--basemap", "https://tiles.example/tile.png"], "--basemap"),  # no {z}/{x}/{y}
])
def test_web_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, named):
    """Each row: exit 2, one line on stderr naming the flag, and the server never starts."""
    import floodwatch.monitoring.web as web

    monkeypatch.setattr(web, "serve", lambda *a, **k: pytest.fail("the server started on bad input"))
    afile = tmp_path / "plain.txt"
    afile.write_text("x")
    argv = ["web", "--db", str(tmp_path / "fw.db")] + [a.replace("{file}", str(afile)) for a in args]
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and named in err and "Traceback" not in err
