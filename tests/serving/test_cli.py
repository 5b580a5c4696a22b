"""`floodwatch client` and `floodwatch serve` as a user runs them (subprocesses, real server)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from floodwatch.serving.client import softmax_water
from floodwatch.serving.repository import add_model_version

from tests.ports import free_port

from .conftest import PREPROCESSING, ort_logits

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def floodwatch(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "floodwatch", *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


def crop(src_path, dst_path, size: int = 96):
    """A georeferenced corner of a real chip: real values and CRS, few pixels (two shared CPU cores)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(src_path) as src:  # the top-left corner keeps the chip's own transform
        window = Window(0, 0, size, size)
        profile = {**src.profile, "width": size, "height": size}
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return dst_path


def test_client_writes_what_infer_writes_for_real_chips(triton, onnx_models, shared_data, tmp_path):
    import rasterio
    from PIL import Image

    (tmp_path / "chips").mkdir()
    chips = [crop(shared_data / "sen1floods11" / "S1Hand" / f"{n}_S1Hand.tif", tmp_path / where / f"{n}.tif")
             for n, where in (("Spain_7370579", "chips"), ("Paraguay_34417", "."))]
    out = tmp_path / "masks"
    # a folder of chips and a chip file, as infer takes them
    run = floodwatch("client", str(tmp_path / "chips"), str(chips[1]), "-o", str(out), "--url", triton.grpc_url,
                     "--protocol", "grpc", "--model", "flood", "--model-version", "1")
    assert run.returncode == 0, run.stderr
    for chip in chips:
        with rasterio.open(chip) as src, rasterio.open(out / f"{chip.stem}_mask.tif") as dst:
            image = src.read().astype(np.float32)
            assert (dst.crs, dst.transform, dst.shape, dst.nodata) == (src.crs, src.transform, src.shape, 255)
            mask = dst.read(1)
        valid = np.isfinite(image).all(axis=0)
        x = PREPROCESSING.apply(image[None], valid[None])
        expected = np.where(softmax_water(ort_logits(onnx_models[0], x))[0] >= 0.5, 1, 0)
        expected[~valid] = 255
        # pixels within float noise of the threshold may flip; everything else must agree
        assert (mask != expected).mean() < 1e-4
        # infer's names, infer's content: the mask PNG is one band, 255 water, 0 not water or no data
        png = np.asarray(Image.open(out / f"{chip.stem}_mask.png"))
        np.testing.assert_array_equal(png, np.where(mask == 1, 255, 0))
        assert Image.open(out / f"{chip.stem}_overlay.png").mode == "RGB"
    assert (mask == 255).all()  # Paraguay_34417 is entirely nodata
    assert (out / "summary.json").is_file()


def test_client_summary_names_the_version_it_used(triton, tmp_path):
    """Without --model-version the client stays with the highest version ready; with versions served side by
    side (they differ) summary.json named none of them."""
    import json

    import rasterio

    from floodwatch.data.synthetic import synth_chips
    from floodwatch.serving.client import FloodClient

    chip = tmp_path / "chip.tif"
    image = np.nan_to_num(synth_chips(1, size=32, seed=2)[0].image, nan=-20.0).astype(np.float32)
    with rasterio.open(chip, "w", driver="GTiff", width=32, height=32, count=2, dtype="float32", crs="EPSG:32633",
                       transform=rasterio.Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(image)
    with FloodClient(triton.http_url, model_name="flood") as c:
        latest = c.model_version
    run = floodwatch("client", str(chip), "-o", str(tmp_path / "out"), "--url", triton.http_url)
    assert run.returncode == 0, run.stderr
    assert latest and json.loads((tmp_path / "out" / "summary.json").read_text())["model"] == (
        f"triton {triton.http_url} flood version {latest}")


def test_map_with_the_server_records_the_servers_model(triton, tmp_path):
    """`map --backend triton` wrote "model": null in stats.json: the server's model is named as client names it."""
    import json

    from floodwatch.serving.client import FloodClient
    from tests.mapping.helpers import make_scene

    make_scene(tmp_path / "scene.tif", 96, 96)
    with FloodClient(triton.http_url, model_name="flood") as c:
        served = c.served
    run = floodwatch("map", str(tmp_path / "scene.tif"), "-o", str(tmp_path / "out"), "--backend", "triton",
                     "--url", triton.http_url, "--tile", "64", "--overlap", "16", "-q")
    assert run.returncode == 0, run.stderr
    stats = json.loads((tmp_path / "out" / "scene" / "stats.json").read_text())
    assert stats["backend"] == "triton" and stats["model"] == served
    assert served.startswith(f"triton {triton.http_url} flood version ")


def test_client_against_stopped_server_is_one_line_exit_2(tmp_path):
    run = floodwatch("client", str(tmp_path / "x.tif"), "-o", str(tmp_path), "--url", f"127.0.0.1:{free_port()}",
                     "--retries", "0")
    assert run.returncode == 2
    assert "liveness check failed" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_serve_missing_repository_is_exit_2(tmp_path):
    run = floodwatch("serve", "--model-repository", str(tmp_path / "none"))
    assert run.returncode == 2 and "model repository folder not found" in run.stderr


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGHUP"])
def test_serve_foreground_stops_cleanly_on_sigterm(onnx_models, tmp_path, stop_signal):
    """SIGHUP too (a closed terminal): tritonserver has its own session, and was left running, holding the ports."""
    repo = tmp_path / "repo"
    add_model_version(repo, "flood", onnx_models[0], ort_threads=1)
    http = free_port()
    log = tmp_path / "triton.log"
    log.write_text("an earlier run's line\n")  # a log file given is appended to, never truncated
    proc = subprocess.Popen([sys.executable, "-m", "floodwatch", "serve", "--model-repository", str(repo),
                             "--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port",
                             str(free_port()), "--log-file", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""  # blocking reads end: the command prints "ready" or exits (its own startup timeout)
        while "ready" not in seen:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert f"http://127.0.0.1:{http}" in seen, (seen, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(getattr(signal, stop_signal))
        rest, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Triton stopped" in rest
        with pytest.raises(OSError):  # really gone
            urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/live", timeout=2)
        assert log.read_text().startswith("an earlier run's line\n") and "Started HTTPService" in log.read_text()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
