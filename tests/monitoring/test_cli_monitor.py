import json
import subprocess
import sys

import numpy as np
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
    assert "warning" not in out.stdout
    # a webhook with no rule would never be called: said, not silently stored
    out = fw("aoi", "add", "w3", "--geojson", gj, "--webhook", "http://127.0.0.1:9/h", "--db", tmp_path / "w.db")
    assert out.returncode == 0 and "no rule is set, so no alert will be sent" in out.stdout
    out = fw("aoi", "list", env_db=db)  # database from FLOODWATCH_DB
    assert out.returncode == 0 and "w2" in out.stdout and "west" in out.stdout
    out = fw("aoi", "history", "west", "--png", tmp_path / "h.png", "--db", db)
    assert out.returncode == 0 and "2024-05-13T05:00:00Z" in out.stdout
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    # record an existing map folder again under another time
    folder = next(p for p in outputs.iterdir() if p.is_dir())
    out = fw("aoi", "record", folder, "--acquired", "2024-06-01", "--scene-id", "again", "--db", db)
    assert out.returncode == 0 and "recorded in 3 AOI(s)" in out.stdout  # west, east, w2, out.exception
    # into a database with no AOI there: said why nothing was recorded, and what to do
    out = fw("aoi", "record", folder, "--acquired", "2024-06-01", "--scene-id", "again", "--db", tmp_path / "new.db")
    assert out.returncode == 0 and "recorded in 0 AOI(s): none overlaps the map" in " ".join(out.stdout.split())


def test_aoi_remove(tmp_path):
    db, _ = recorded_store(tmp_path)
    out = fw("aoi", "remove", "west", "--db", db)  # CliRunner's stdin is no terminal: asking is impossible
    assert isinstance(out.exception, MonitoringError) and "add --yes" in str(out.exception)
    out = fw("aoi", "remove", "west", "--yes", "--db", db)
    assert out.returncode == 0 and "removed AOI 'west' and its" in out.stdout, out.exception
    out = fw("aoi", "list", "--db", db)
    assert "east" in out.stdout and "west" not in out.stdout
    out = fw("aoi", "remove", "west", "-y", "--db", db)
    assert isinstance(out.exception, MonitoringError) and "AOI 'west' not found" in str(out.exception)
    out = fw("aoi", "remove", "east", "-y", "--db", tmp_path / "none.db")  # never creates a database
    assert out.exception is not None and not (tmp_path / "none.db").exists()


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
    assert stats["method"] == "logratio" and stats["flooded_pixels"] > 0.5 * truth.sum()
    # -m is not used by the log-ratio, so it is not loaded either (a file that is no model passes)
    (tmp_path / "junk.onnx").write_text("not a model")
    again = fw("change", "--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif", "-o", tmp_path / "chg2",
               "--method", "logratio", "--logratio-threshold", "otsu", "-m", tmp_path / "junk.onnx")
    assert again.returncode == 0, again.exception


def test_change_otsu_without_a_drop_warns_and_maps_no_new_water(tmp_path, capsys):
    from floodwatch.data.sample import Sample

    before, _, _ = scene_pair(size=64)
    image = before.image.copy()
    image[:, 8:40, 8:40] += 6.0  # only brighter: Otsu's split lies above the unchanged pixels' 0 dB
    after = Sample(image=image, mask=None, valid=before.valid, id="after", georef=before.georef, bands=before.bands)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    code, out, err = _main(capsys, "change", "--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif",
                           "-o", tmp_path / "c", "--method", "logratio", "--logratio-threshold", "otsu", "-q")
    stats = json.loads((tmp_path / "c" / "stats.json").read_text())
    assert code == 0 and "new water: 0 px" in out and stats["flooded_pixels"] == 0
    assert err.startswith("warning: ") and len(err.strip().splitlines()) == 1
    assert f"+{stats['threshold']:.2f} dB" in err and "no new water" in err and "--logratio-threshold" in err


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


def _main(capsys, *argv):
    """(exit code, stdout, stderr) of the real entry point, in-process (flags named as a user sees them)."""
    with pytest.raises(SystemExit) as exit_:
        cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_change_takes_quiet_and_band_in_any_case(tmp_path, tiny_checkpoint):
    before, after, _ = scene_pair(size=64)
    write_scene(before, tmp_path / "b.tif")
    write_scene(after, tmp_path / "a.tif")
    scenes = ["--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif"]
    stats = []
    for name, band in (("lower", "vh"), ("upper", "VH")):
        out = fw("change", *scenes, "-o", tmp_path / name, "--method", "logratio", "--band", band, "-q")
        assert out.returncode == 0, out.exception
        record = json.loads((tmp_path / name / "stats.json").read_text())
        stats.append(record["flooded_pixels"])
        assert record["model"] is None  # the log-ratio runs none
    assert stats[0] == stats[1]
    # -q silences the model passes' progress bars (as map's -q does), and only them
    for quiet in ([], ["-q"]):
        out = fw("change", *scenes, "-o", tmp_path / "model", "-m", tiny_checkpoint, *quiet)
        assert out.returncode == 0, out.exception
        assert ("after " in out.stdout) is not bool(quiet) and "new water:" in out.stdout
        # the model file, as map's stats.json records its own
        assert json.loads((tmp_path / "model" / "stats.json").read_text())["model"] == str(tiny_checkpoint.absolute())


def test_change_reads_an_ombria_style_picture_pair(tmp_path):
    """8-bit PNGs as OMBRIA's (one band, VV): dB through OMBRIA's map; no georeference, so pixels only."""
    import warnings

    import rasterio
    from PIL import Image
    from rasterio.errors import NotGeoreferencedWarning

    from floodwatch.data.harmonise import to_db

    before = np.full((48, 48), 120, np.uint8)
    after = before.copy()
    after[8:24, 8:24] = 30  # (30 - 120) * 0.0645 = 5.8 dB darker
    for name, picture in (("S1_before_0001.png", before), ("S1_after_0001.png", after)):
        Image.fromarray(picture).save(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)  # never shown to the user
        out = fw("change", "--before", tmp_path / "S1_before_0001.png", "--after", tmp_path / "S1_after_0001.png",
                 "-o", tmp_path / "c", "--method", "logratio")
    assert out.returncode == 0, out.exception
    assert "new water: 256 px (no georeference" in out.stdout
    stats = json.loads((tmp_path / "c" / "stats.json").read_text())
    assert stats["flooded_pixels"] == 256 and stats["flooded_km2"] is None and stats["crs"] is None
    assert stats["band"] == "VV" and stats["band_from"] == {"before": "position", "after": "position"}  # unnamed
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "change_mask.tif", "change_score.tif", "quicklook.png", "stats.json"]  # no polygons without a place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "c" / "change_score.tif") as src:
            score = src.read(1)
    expected = to_db(np.uint8(30), "ombria", "VV") - to_db(np.uint8(120), "ombria", "VV")
    assert score[10, 10] == pytest.approx(expected, abs=1e-5) and score[40, 40] == 0


def test_a_scene_recorded_again_under_another_time_is_refused_unless_replaced(tmp_path, capsys):
    from floodwatch.monitoring.store import Store

    db, outputs = recorded_store(tmp_path)
    record = ["aoi", "record", outputs / "before", "--scene-id", "S1_before", "--db", db]

    def times():
        with Store(db) as store:
            return [h["acquired"] for h in store.history("west")]

    code, _, err = _main(capsys, *record, "--acquired", "2024-05-07")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "already recorded as acquired 2024-05-01T05:00:00Z" in err and "--scene-id" in err and "--replace" in err
    assert times() == ["2024-05-01T05:00:00Z", "2024-05-13T05:00:00Z"]
    assert _main(capsys, *record, "--acquired", "2024-05-01T05:00:00Z")[0] == 0  # a re-run updates its record
    assert _main(capsys, *record, "--acquired", "2024-05-07", "--replace")[0] == 0  # a corrected time
    assert times() == ["2024-05-07T00:00:00Z", "2024-05-13T05:00:00Z"]


def test_undelivered_alerts_exit_3_once_the_record_is_stored(tmp_path, capsys, receiver):
    from floodwatch.monitoring.store import Store

    receiver.fail_first, receiver.status_when_failing = 10 ** 6, 400  # 4xx is final: no retries to wait for
    db, outputs = recorded_store(tmp_path)
    gj = tmp_path / "aoi.geojson"
    gj.write_text(json.dumps(WEST_HALF))
    assert _main(capsys, "aoi", "add", "w2", "--geojson", gj, "--threshold-km2", "0", "--webhook", receiver.url,
                 "--db", db)[0] == 0
    code, out, err = _main(capsys, "aoi", "record", outputs / "after", "--acquired", "2024-05-13T05:00:00Z",
                           "--scene-id", "S1_after", "--db", db)
    assert code == 3 and "recorded in" in out and "retry-alerts" in err
    with Store(db) as store:
        assert [h["scene_id"] for h in store.history("w2")] == ["S1_after"]
    code, out, _ = _main(capsys, "aoi", "retry-alerts", "--db", db)
    assert code == 3 and "still failing 1" in out
    receiver.fail_first = receiver.hits  # the receiver is back
    code, out, _ = _main(capsys, "aoi", "retry-alerts", "--db", db)
    assert code == 0 and "delivered 1, still failing 0" in out


def test_map_acquired_checks_before_mapping_and_exits_3_on_undelivered(tmp_path, capsys, monkeypatch, tiny_checkpoint):
    """map --acquired: a time before Sentinel-1, or a scene already recorded under another time, is refused before
    any map is written; the exit status is 3 when the store counts an alert undelivered (counting itself:
    test_undelivered_alerts_exit_3_once_the_record_is_stored)."""
    import floodwatch.monitoring.alerts as alerts
    from floodwatch.monitoring.store import Store

    db, _ = recorded_store(tmp_path)
    scene = tmp_path / f"{scene_pair()[1].id}.tif"  # the after scene recorded_store wrote
    code, _, err = _main(capsys, "map", scene, "-m", tiny_checkpoint, "-o", tmp_path / "old", "--tile", "64",
                         "--overlap", "16", "--acquired", "2010-05-20", "--db", db, "-q")
    assert code == 2 and "--acquired" in err and "before Sentinel-1's launch" in err
    assert not (tmp_path / "old").exists()
    monkeypatch.setattr(alerts, "undelivered", lambda store, ids: len(ids))  # every webhook down
    code, out, err = _main(capsys, "map", scene, "-m", tiny_checkpoint, "-o", tmp_path / "new", "--tile", "64",
                           "--overlap", "16", "--acquired", "2024-05-20", "--db", db, "-q")
    assert code == 3 and "recorded in 2 AOI time series" in out and "retry-alerts" in err
    with Store(db) as store:
        assert "2024-05-20T00:00:00Z" in [h["acquired"] for h in store.history("west")]
    code, _, err = _main(capsys, "map", scene, "-m", tiny_checkpoint, "-o", tmp_path / "again", "--tile", "64",
                         "--overlap", "16", "--acquired", "2024-05-21", "--db", db, "-q")
    assert code == 2 and "already recorded as acquired 2024-05-20T00:00:00Z" in err
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("args, named", [
    (["--db", "{missing}"], "{missing}: monitoring database not found"),
    (["--db", "{folder}"], "{folder}: is a folder, not a monitoring database"),
    (["--db", "{corrupt}"], "{corrupt}: cannot open the monitoring database"),
    (["--db", "{db}", "--write-token", "short"], "--write-token: use at least 16 characters"),
])
def test_web_checks_every_input_before_it_announces(tmp_path, monkeypatch, capsys, args, named):
    """A bad --db or token: one line naming it, nothing announced, no database made where none was."""
    import uvicorn

    from floodwatch.monitoring.store import Store

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started on bad input"))
    files = {"missing": tmp_path / "missing_dir" / "new.db", "folder": tmp_path / "folder",
             "corrupt": tmp_path / "corrupt.db", "db": tmp_path / "fw.db"}
    files["folder"].mkdir()
    files["corrupt"].write_text("not a database\n")
    Store(files["db"]).close()
    code, out, err = _main(capsys, "web", *[a.format(**files) for a in args])
    assert code == 2 and len(err.strip().splitlines()) == 1 and named.format(**files) in err
    assert out == "" and not (tmp_path / "missing_dir").exists()
    # the same database with a token of 16 characters: announced, then served
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw["port"]))
    code, out, _ = _main(capsys, "web", "--db", files["db"], "--port", "18231", "--write-token", "t" * 16)
    assert code == 0 and served == [18231]
    assert out.strip() == "floodwatch web on http://127.0.0.1:18231/ (write endpoints on)"


def test_web_on_a_port_in_use_or_an_unknown_host_is_one_line(tmp_path, monkeypatch, capsys):
    """uvicorn reported these after "floodwatch web on http://..." and its start-up lines, and exited 3 (an
    undelivered alert elsewhere): now one line naming the flag, exit 2, nothing announced."""
    import socket

    import uvicorn

    from floodwatch.monitoring.store import Store

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started on bad input"))
    Store(tmp_path / "fw.db").close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = _main(capsys, "web", "--db", tmp_path / "fw.db", "--port", str(port))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"--port: 127.0.0.1:{port} is in use" in err
    code, out, err = _main(capsys, "web", "--db", tmp_path / "fw.db", "--host", "no-such-host.invalid")
    assert code == 2 and out == "" and "--host: 'no-such-host.invalid' is not a name or address" in err
