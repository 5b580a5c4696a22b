"""`floodwatch data ...` end to end, including bad input: exit 2, one line, no traceback, no output file."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from . import fakes


def run(*args):
    """One real process (what a user sees: exit code, stderr)."""
    return subprocess.run([sys.executable, "-m", "floodwatch", "data", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def cli(run_cli):
    """`floodwatch data ...`, in-process."""
    return lambda *args: run_cli("data", *args)


def test_synth_inspect_stats_split_convert(tmp_path, cli):
    out = cli("synth", tmp_path / "ds", "--chips", 6, "--size", 32, "--seed", 3)
    assert out.returncode == 0, out.stderr
    out = cli("inspect", tmp_path / "ds")
    assert out.returncode == 0 and "sen1floods11, 6 chips" in out.stdout and "SynthD" in out.stdout
    assert cli("stats", tmp_path / "ds", "-o", tmp_path / "st.json").returncode == 0
    assert json.loads((tmp_path / "st.json").read_text())["chips"] == 6
    out = cli("split", tmp_path / "ds", "--method", "region", "-o", tmp_path / "split.csv")
    assert out.returncode == 0 and (tmp_path / "split.csv").read_text().startswith("id,split\n")
    assert cli("convert", tmp_path / "ds", tmp_path / "png", "--to", "images-masks").returncode == 0
    assert len(list((tmp_path / "png" / "masks").glob("*.png"))) == 6
    # the CSV `data split` wrote sorts the chips into one folder per split, images/<split> and masks/<split> as
    # the course's TAO spec reads them; --split was the flag's old name
    for flag, name in (("--split-csv", "by_split"), ("--split", "by_split_old_flag")):
        assert cli("convert", tmp_path / "ds", tmp_path / name, flag, tmp_path / "split.csv").returncode == 0
        assert len(list((tmp_path / name).glob("masks/*/*.png"))) == 6
        assert sorted(p.name for p in (tmp_path / name / "images").iterdir()) == ["test", "train", "val"]
    for flag in ("--output", "--json"):  # --json was the old name of -o/--output (data stats' and evaluate's)
        assert cli("inspect", tmp_path / "ds", flag, tmp_path / f"{flag[2:]}.json").returncode == 0
        assert json.loads((tmp_path / f"{flag[2:]}.json").read_text())["chips"] == 6
    out = cli("synth", tmp_path / "look_alikes", "--chips", 2, "--size", 64, "--phenomena", "sand, urban")
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "look_alikes" / "S1Hand").glob("*.tif"))) == 2


def test_converting_bitemporal_chips_says_their_before_images_are_left_out(tmp_path, cli):
    """OMBRIA's BEFORE pictures were dropped without a word: a bi-temporal model cannot train on the result."""
    out = cli("convert", fakes.ombria(tmp_path / "om"), tmp_path / "png")
    assert out.returncode == 0, out.stderr
    assert "before images are not written" in " ".join(out.stderr.split())
    out = cli("convert", fakes.sen1floods11(tmp_path / "s1", chips=2), tmp_path / "png1")
    assert out.returncode == 0 and "before images" not in out.stderr


def test_convert_split_csv_writes_inside_out_and_counts_what_it_wrote(tmp_path, cli):
    root = fakes.sen1floods11(tmp_path / "s1", chips=4, splits=False)
    a, b = sorted(p.name[:-len("_S1Hand.tif")] for p in (root / "S1Hand").glob("*.tif"))[:2]
    (tmp_path / "outside.csv").write_text(f"id,split\n{a},train\n{b},../../evil\n")
    _one_line_error(cli("convert", root, tmp_path / "w" / "png", "--split-csv", tmp_path / "outside.csv"),
                    "outside.csv", "'../../evil'")
    assert not list(tmp_path.rglob("evil*")) and not list(tmp_path.rglob("*.png"))
    (tmp_path / "part.csv").write_text(f"id,split\n{a},train\nnope,val\n")  # one chip, one id that is none
    out = cli("convert", root, tmp_path / "png", "--split-csv", tmp_path / "part.csv")
    assert out.returncode == 0, out.stderr
    assert "wrote 1 chips" in out.stdout and "3 not in" in out.stdout
    assert "part.csv: 1 of its ids are no chip" in out.stderr and "'nope'" in out.stderr
    assert [p.name for p in (tmp_path / "png").rglob("*.png")] == [f"{a}.png"] * 2


def _one_line_error(out, *needles):
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for n in needles:
        assert n in out.stderr


def test_bad_inputs_fail_cleanly(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    _one_line_error(run("inspect", tmp_path / "empty"), "empty folder")  # a real process once
    _one_line_error(cli("stats", tmp_path / "missing", "-o", tmp_path / "st.json"), "folder not found")
    root = fakes.sen1floods11(tmp_path / "s1", chips=2, splits=False)
    (root / "LabelHand" / "SynthA_0_LabelHand.tif").unlink()
    _one_line_error(cli("stats", root, "-o", tmp_path / "st.json"), "SynthA_0_S1Hand.tif", "without a matching label")
    eroot = fakes.etci(tmp_path / "e", cols=1, rows=2)
    png = sorted(eroot.rglob("vh/*.png"))[1]
    png.write_bytes(png.read_bytes()[:50])
    _one_line_error(cli("convert", eroot, tmp_path / "png"), "_vh.png", "truncated")
    _one_line_error(cli("split", eroot, "-o", tmp_path / "s.csv", "--fractions", "a,b"), "--fractions")
    _one_line_error(cli("synth", tmp_path / "syn", "--phenomena", "sand,lava"), "--phenomena", "'lava'")
    # nothing half-written: no output files and no temporary leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "empty", "s1"]


def test_inspect_names_what_the_masks_mark(tmp_path, cli):
    """OMBRIA's masks mark the flood: inspect called their 1s water (its JSON keeps the water_* keys, with label)."""
    out = cli("inspect", fakes.ombria(tmp_path / "om"), "-o", tmp_path / "om.json")
    assert out.returncode == 0, out.stderr
    assert "pixels: flood " in out.stdout and "flood share" in out.stdout and "water" not in out.stdout
    assert json.loads((tmp_path / "om.json").read_text())["label"] == "flood"
    out = cli("inspect", fakes.sen1floods11(tmp_path / "s1", chips=2))
    assert "pixels: water " in out.stdout
