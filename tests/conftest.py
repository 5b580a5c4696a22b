"""Shared fixtures. Real data lives in ../shared/data beside the project; tests that need it skip without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FLOODWATCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Two cores: keep torch from oversubscribing them when tests run beside other work.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# Under CI=true a test skipped for want of one of these is a missing install step in .ci/run, not a pass.
INSTALL_STEP_WORDS = ("chromium", "chromedriver", "selenium", "dali", "postgresql", "initdb", "psycopg")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[-1] if isinstance(longrepr, tuple) else longrepr)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    missing = [r for r in skipped if any(w in _skip_reason(r).lower() for w in INSTALL_STEP_WORDS)]
    for report in missing:
        reporter.write_line(f"CI=true: skipped for a missing install step: {report.nodeid}: {_skip_reason(report)}")
    if missing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained ResNet-10 U-Net (seed 0, 2 channels, default pre-processing) saved as a checkpoint."""
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.models import build_model
    from floodwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = dict(num_layers=10, in_channels=2, num_classes=2, all_projections=False, use_batch_norm=True)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, build_model(**cfg), model_config=cfg, preprocessing=Preprocessing())


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `floodwatch ARGS...` in-process (no interpreter start-up per command on a busy machine);
    returns a CompletedProcess with the exit code, stdout and stderr a user would see."""
    import subprocess

    from floodwatch.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args):
        try:
            main(list(map(str, args)))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return invoke
