"""Bad input to `floodwatch map`, and what a killed or failed run leaves: the catalogue (see
tests/bad_inputs.py) plus the .part clean-up, run end to end with a real SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from floodwatch.mapping import map_scene
from tests.bad_inputs import Case, check, params, plain_file, rewrite_raster, unsafe_checkpoint

from .helpers import ThresholdPredictor, make_scene

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad_map")
    f = {"model": tiny_checkpoint, "file": plain_file(d / "a_file"), "unsafe": unsafe_checkpoint(d / "unsafe.pt"),
         "scene": d / "scene.tif", "not_raster": plain_file(d / "notes.tif"), "onnx": plain_file(d / "m.onnx")}
    make_scene(f["scene"], 64, 64)
    f["dir"] = d / "a_folder"
    f["dir"].mkdir()
    f["kept"] = d / "kept"  # -o whose scene/ folder holds a file of the user's
    (f["kept"] / "scene").mkdir(parents=True)
    (f["kept"] / "scene" / "report.docx").write_text("the user's")
    f["vv"] = rewrite_raster(f["scene"], d / "vv.tif", bands=[1])
    f["vh_shifted"] = rewrite_raster(f["scene"], d / "vh.tif", bands=[2], shift_px=3)
    f["s_vv"] = rewrite_raster(f["scene"], d / "s_vv.tif", bands=[1])
    f["s_vh"] = rewrite_raster(f["scene"], d / "s_vh.tif", bands=[2])
    f["c_vv"] = rewrite_raster(f["scene"], d / "c_vv.tif", bands=[2])  # names right, each holds the other band
    f["c_vh"] = rewrite_raster(f["scene"], d / "c_vh.tif", bands=[1])
    from floodwatch.export import export_onnx

    f["fixed_onnx"] = d / "fixed.onnx"  # `export --height 64 --width 64`: no other input size
    export_onnx(tiny_checkpoint, f["fixed_onnx"], height=64, width=64)
    return f


CASES = [
    Case("scene-folder-holds-users-files", "map {scene} -m {model} -o {kept} --tile 64 --overlap 16",
         ("{kept}/scene", "report.docx, which map did not write"), absent=("{kept}/scene/stats.json",)),
    Case("scene-folder-holds-users-files-workers", "map {scene} -m {model} -o {kept} --workers 2",
         ("{kept}/scene", "report.docx, which map did not write"), absent=("{kept}/scene/stats.json",)),
    Case("threshold-1", "map {scene} -m {model} -o {out} --threshold 1",
         ("--threshold: 1.0 must lie strictly between 0 and 1",)),
    Case("output-under-file", "map {scene} -m {model} -o {file}/m --tile 64 --overlap 16", ("{file} is a file",)),
    Case("scene-is-a-folder", "map --vv {dir} --vh {scene} -m {model} -o {out}", ("{dir}: is a folder, not a file",)),
    Case("model-is-a-folder", "map {scene} -m {dir} -o {out}", ("{dir}: is a folder, not a checkpoint",)),
    Case("water-mask-is-a-folder", "map {scene} -m {model} -o {out} --water-mask {dir}",
         ("{dir}: is a folder, not a water mask",)),
    Case("not-a-raster", "map {not_raster} -m {model} -o {out}", ("{not_raster}", "not a raster")),
    # every scene is opened before the first is mapped: no map of the good one is left (-o {out} absent)
    Case("second-scene-not-a-raster", "map {scene} {not_raster} -m {model} -o {out} --tile 64 --overlap 16",
         ("{not_raster}", "not a raster")),
    Case("second-scene-not-a-raster-workers", "map {scene} {not_raster} -m {model} -o {out} --workers 2",
         ("{not_raster}", "not a raster")),  # also before a cluster starts: not one failure among the maps
    Case("onnx-of-fixed-size-other-tile", "map {scene} -m {fixed_onnx} -o {out} --tile 32 --overlap 8",
         ("{fixed_onnx}", "64 x 64 px only", "tiles of 64 px")),
    Case("model-with-triton", "map {scene} -m {model} -o {out} --backend triton",
         ("-m/--model", "not used with --backend triton")),
    Case("weights-with-triton", "map {scene} -o {out} --backend triton --weights 1,1",
         ("--weights", "not used with --backend triton")),
    # counted before a cluster starts, not by each worker
    Case("weights-count", "map {scene} -m {model} -m {model} -o {out} --weights 1,2,3 --workers 2",
         ("--weights: 3 weights for 2 models (-m)",)),
    Case("weights-negative", "map {scene} -m {model} -m {model} -o {out} --weights=-1,2 --workers 2",
         ("--weights: an ensemble of 2 needs 2 non-negative numbers with a positive sum", "[-1.0, 2.0]")),
    Case("weights-one-model", "map {scene} -m {model} -o {out} --weights 2",
         ("--weights: ensemble weights need more than one model",)),
    Case("temperature-not-json", "map {scene} -m {model} -o {out} --temperature {file} --workers 2",
         ("{file}: not a JSON temperature file",)),
    Case("vv-vh-grids-differ", "map --vv {vv} --vh {vh_shifted} -m {model} -o {out}", ("{vh_shifted}", "grid")),
    Case("vv-vh-swapped", "map --vv {s_vh} --vh {s_vv} -m {model} -o {out}",
         ("{s_vh}: named as the VH band but given as the VV one", "--vh")),
    # the names agree, the content does not (VH is the darker band): refused as unnamed VH, VV bands are
    Case("vv-vh-content-swapped", "map --vv {c_vv} --vh {c_vh} -m {model} -o {out}",
         ("{c_vv}, {c_vh}: look swapped", "VH is the darker band")),
    Case("band-file-partner-content-swapped", "map {c_vv} -m {model} -o {out}", ("{c_vv}, {c_vh}: look swapped",)),
    Case("downsample-zero", "map {scene} -m {model} -o {out} --downsample 0", ("--downsample", "Invalid value")),
    Case("min-area-negative", "map {scene} -m {model} -o {out} --min-area -100", ("--min-area", "Invalid value")),
    Case("simplify-negative", "map {scene} -m {model} -o {out} --simplify -3", ("--simplify", "Invalid value")),
    Case("hand-max-negative", "map {scene} -m {model} -o {out} --hand-max -5", ("--hand-max", "Invalid value")),
    Case("slope-max-over-90", "map {scene} -m {model} -o {out} --slope-max 100", ("--slope-max", "Invalid value")),
    Case("acquired-not-a-time", "map {scene} -m {model} -o {out} --acquired notadate",
         ("--acquired: 'notadate' is not an ISO-8601 date or time",)),
    Case("tta-transforms-unknown", "map {scene} -m {model} -o {out} --tta-transforms spin",
         ("--tta-transforms: unknown transform(s) spin",)),
    Case("self-train-onnx-backend", "map {scene} -m {model} -o {out} --backend onnx --self-train",
         ("--self-train", "--backend onnx runs it, which cannot learn"), forbid=("{model} runs on onnx",)),
    Case("self-train-triton", "map {scene} -o {out} --backend triton --self-train",
         ("--self-train", "--backend triton runs a model on a server")),
    Case("self-train-onnx-file", "map {scene} -m {onnx} -o {out} --self-train --workers 2",  # before any cluster
         ("--self-train", "{onnx} runs on onnx")),
    Case("self-train-ensemble", "map {scene} -m {model} -m {model} -o {out} --self-train --workers 2",
         ("--self-train: fine-tunes one torch checkpoint; not an ensemble of 2 models (-m)",)),
    Case("self-train-output-under-file", "map {scene} -m {model} -o {file}/m --self-train", ("{file} is a file",)),
    Case("self-train-downsample", "map {scene} -m {model} -o {out} --self-train --downsample 2",
         ("--self-train", "not with --downsample")),
    # before the model is loaded (the unsafe checkpoint would be the error otherwise)
    Case("scene-given-twice", "map {scene} {scene} -m {unsafe} -o {out}", ("{scene}: given twice",)),
    Case("unsafe-checkpoint", "map {scene} -m {unsafe} -o {out}", ("{unsafe}", "safe loading"),
         forbid=("weights_only", "Traceback", "this must never run")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)


_SLOW_MAP = """
import sys, time
from floodwatch.mapping import map_scene
from tests.mapping.helpers import ThresholdPredictor

class Slow(ThresholdPredictor):
    def predict(self, batch):
        time.sleep(0.5)
        return super().predict(batch)

map_scene(sys.argv[1], Slow(), sys.argv[2], tile=32, overlap=8, batch=1, progress=False)
"""


@pytest.mark.slow  # a subprocess that imports the mapping stack, then a SIGKILL
def test_a_killed_runs_part_folder_is_removed_by_the_next_run(tmp_path):
    scene = tmp_path / "s.tif"
    make_scene(scene, 96, 96)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_MAP, str(scene), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob(".s.*.part"))):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the mapping subprocess never started writing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    [leftover] = out.glob(".s.*.part")
    assert f".pid{proc.pid}@" in leftover.name
    result = map_scene(scene, ThresholdPredictor(), out, tile=64, overlap=16, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["s"] and result.paths["mask"].is_file()


def test_a_live_runs_part_folder_is_left_alone(tmp_path):
    scene = tmp_path / "s.tif"
    make_scene(scene, 40, 40)
    out = tmp_path / "out"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / f".s.pid{sleeper.pid}@{_host()}.abcd1234.part"
        live.mkdir(parents=True)
        map_scene(scene, ThresholdPredictor(), out, tile=64, overlap=16, progress=False)
        assert live.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()


def _host() -> str:
    from floodwatch.io import _HOST

    return _HOST


def test_a_failed_run_leaves_no_output_folder(tmp_path):
    scene = tmp_path / "s.tif"
    make_scene(scene, 90, 70)

    class Failing(ThresholdPredictor):
        def predict(self, batch):
            raise RuntimeError("model fell over")

    with pytest.raises(RuntimeError):
        map_scene(scene, Failing(), tmp_path / "new" / "out", tile=64, overlap=16, progress=False)
    assert not (tmp_path / "new").exists()


def test_scene_folder_and_files_follow_the_umask(tmp_path):
    scene = tmp_path / "s.tif"
    make_scene(scene, 40, 40)
    old = os.umask(0o022)
    try:
        result = map_scene(scene, ThresholdPredictor(), tmp_path / "out", tile=64, overlap=16, progress=False)
    finally:
        os.umask(old)
    assert (result.out_dir.stat().st_mode & 0o777) == 0o755
    assert {p.stat().st_mode & 0o777 for p in result.out_dir.iterdir()} == {0o644}
