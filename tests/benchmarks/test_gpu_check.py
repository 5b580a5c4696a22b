"""benchmarks/gpu_check.sh --dry-run: the GPU check's code runs on a CPU and writes its JSON and table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {"train", "infer", "augment", "map", "ddp"}


@pytest.mark.slow
def test_dry_run_writes_a_full_report(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert report["dry_run"] is True and report["machine"]["device"] == "cpu"
    rows = report["results"]
    assert {r["group"] for r in rows} == GROUPS
    assert not [r for r in rows if "error" in r]
    measured = [r for r in rows if "per_s" in r]
    assert all(r["per_s"] > 0 for r in measured)
    # only what needs CUDA or the full run may be skipped, and it says so
    assert {r["name"].split()[-1] for r in rows if "skipped" in r} <= {"torch.compile", "graph"}
    assert next(r for r in rows if r["group"] == "ddp")["ok"] is True
    mapped = next(r for r in rows if r["group"] == "map")
    assert mapped["valid_km2"] > 0 and set(mapped["stage_seconds"]) >= {"read", "predict", "write"}
    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    body = [ln for ln in table if ln.startswith("| ") and not ln.startswith("| group")]
    assert len(body) == len(rows) and "DRY RUN" in table[0]


def test_no_gpu_without_dry_run_is_a_one_line_refusal(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--dry-run" in proc.stderr
    assert not (tmp_path / "gpu_check.json").exists()
