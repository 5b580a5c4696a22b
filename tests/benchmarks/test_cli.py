"""The benchmark scripts as a contributor runs them: --help shows the whole module docstring (what is measured,
data, time, output), bad arguments stop with one argparse line before any work, and the command lines quoted
in docs/benchmarks.md use flags the scripts have."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .helpers import ROOT, load_benchmark

SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def test_every_script_passes_its_whole_docstring_to_argparse():
    # the first docstring line alone hides the usage, the data needed and what is printed
    for name in SCRIPTS:
        source = (ROOT / "benchmarks" / f"{name}.py").read_text()
        if "ArgumentParser(" not in source:
            continue
        assert "ArgumentParser(description=__doc__," in source, name
        assert "RawDescriptionHelpFormatter" in source, name


@pytest.mark.parametrize("name", ["read_chip", "fetch_window", "loader", "terrain", "web_load"])
def test_help_shows_the_usage_lines(name):
    got = run(name, "--help")
    assert got.returncode == 0, got.stderr
    assert f"python benchmarks/{name}.py" in got.stdout


@pytest.mark.parametrize("name, args, match", [
    ("read_chip", ["--repeat", "0"], "--repeat: 0"),
    ("read_chip", ["--data", "/nonexistent/shared/data"], "--data: /nonexistent/shared/data is not a folder"),
    ("fetch_window", ["--size", "0"], "--size: 0 px"),
    ("fetch_window", ["--size", "128"], "--size: 128 px"),
    ("fetch_window", ["--block", "100"], "--block: 100 px"),
    ("terrain", ["--size", "0"], "--size: 0 px"),
    ("web_load", ["--records", "0"], "--records: 0"),
    ("web_load", ["--concurrency", "0"], "--concurrency: 0"),
    ("web_load", ["--seconds", "nan"], "--seconds: nan"),
    ("loader", ["--chips", "0"], "--chips: 0"),
])
def test_bad_arguments_stop_with_one_line(name, args, match):
    got = run(name, *args)
    assert got.returncode == 2
    assert "Traceback" not in got.stderr
    assert match in got.stderr.strip().splitlines()[-1]


def test_loader_names_a_folder_without_chips(tmp_path):
    got = run("loader", "--path", str(tmp_path), "--chips", "1")
    assert got.returncode == 1
    assert "Traceback" not in got.stderr
    assert got.stderr.strip().splitlines() == [f"{tmp_path}: empty folder"]


def test_read_chip_says_when_it_reads_a_synthetic_chip(tmp_path):
    got = run("read_chip", "--data", str(tmp_path), "--repeat", "1")
    assert got.returncode == 0, got.stderr
    assert f"no {tmp_path / 'sen1floods11'}: a synthetic" in got.stdout
    assert re.search(r"sen1floods11 GeoTIFF 512px .* \d+\.\d\dx", got.stdout)


def test_terrain_reference_model_exports(tmp_path, monkeypatch):
    # terrain.py imported a map_scene helper that no longer existed: the model half of the run died on import
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import map_scene

    monkeypatch.setattr(map_scene, "CACHE", tmp_path)
    onnx = load_benchmark("terrain").reference_onnx()
    assert onnx.parent == tmp_path and onnx.suffix == ".onnx" and onnx.stat().st_size > 0


def doc_commands() -> list[str]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # shell line continuations in fenced blocks
    found = re.findall(r"`python (benchmarks/\w+\.py[^`]*)`", text)
    found += re.findall(r"^python (benchmarks/\w+\.py.*)$", text, re.MULTILINE)
    return found


def test_doc_command_lines_use_existing_scripts_and_flags():
    commands = doc_commands()
    assert len(commands) > 50
    flags: dict[str, set[str]] = {}
    for command in commands:
        script = command.split()[0]
        assert (ROOT / script).is_file(), command
        if script not in flags:
            source = (ROOT / script).read_text()
            flags[script] = set(re.findall(r"add_argument\(\s*(?:\"-\w\", )?\"(--[\w-]+)\"", source))
            # map_scene's hidden child flags are added in a loop
            flags[script] |= set(re.findall(r"\"(--[\w-]+)\"", source.split("def main")[-1]))
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command):
            assert flag in flags[script], f"{script} {flag}: {command}"
        for path in re.findall(r"(?<![\w/.])((?:examples|src)/[\w./-]+\.(?:yaml|pt|onnx|csv))", command):
            assert (ROOT / path).exists(), f"{path}: {command}"
