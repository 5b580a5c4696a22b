"""floodwatch.io: strict JSON, text files read as UTF-8 or refused in one line, output folders checked
before work starts, temporary names that a later run can safely clean up."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from floodwatch.errors import DataError, FloodwatchError
from floodwatch.io import (LEGACY_PART_AGE_S, _HOST, atomic_dir, atomic_path, check_not_input, check_output_dir,
                           check_replaceable, clean_stale_parts, dumps_json, read_text, write_json)


def _strict(text):
    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_nan_and_infinities_become_null():
    obj = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float32("nan"), "d": np.array([1.0, np.nan]),
           "e": (np.int64(3), np.float64(2.5)), "f": {"g": float("nan")}}
    assert _strict(dumps_json(obj)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": [1.0, None],
                                        "e": [3, 2.5], "f": {"g": None}}


def test_write_json_and_unknown_objects(tmp_path):
    write_json(tmp_path / "x.json", {"v": np.nan, "p": tmp_path})
    assert _strict((tmp_path / "x.json").read_text()) == {"v": None, "p": str(tmp_path)}
    with pytest.raises(TypeError):
        dumps_json({"o": object()})
    assert _strict(dumps_json({"o": object()}, default=lambda o: "obj")) == {"o": "obj"}


def test_read_text_names_the_file(tmp_path):
    (tmp_path / "ok.txt").write_text("héllo\n", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt") == "héllo\n"
    (tmp_path / "bin").write_bytes(b"ab\xffcd")
    with pytest.raises(DataError, match=r"bin: list is not UTF-8 text \(byte 0xff at offset 2"):
        read_text(tmp_path / "bin", error=DataError, what="list")
    with pytest.raises(FloodwatchError, match="nope: file not found"):
        read_text(tmp_path / "nope")
    with pytest.raises(FloodwatchError, match="is a folder, not a file"):
        read_text(tmp_path)


def test_output_folder_checks_create_nothing(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(FloodwatchError, match=f"{blocker} is a file, not a folder"):
        check_output_dir(blocker / "a" / "b")
    with pytest.raises(FloodwatchError, match=f"{blocker} is a file, not a folder"):
        check_output_dir(blocker)
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


def test_failed_writes_remove_the_folders_they_created(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "kept" / "a" / "b" / "x.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("failed while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and not any((tmp_path / "kept").iterdir())
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d" / "scene") as tmp:
            (tmp / "file").write_text("half")
            raise RuntimeError("failed while writing")
    assert not (tmp_path / "d").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_clean_stale_parts_removes_only_dead_or_old_leftovers(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        names = {"dead_dir": f".s.pid{dead}@{_HOST}.abcd1234.part",
                 "dead_file": f".x.json.pid{dead}@{_HOST}.abcd1234.part.json",
                 "live": f".s.pid{live.pid}@{_HOST}.abcd1234.part",
                 "other_host": f".s.pid{dead}@elsewhere-{_HOST}.abcd1234.part",
                 "legacy_old": ".s.k2j4h5g6.part", "legacy_new": ".s.a1b2c3d4.part",
                 "legacy_other_target": ".t.k2j4h5g6.part", "unrelated": ".s.part"}
        for key, name in names.items():
            path = tmp_path / name
            (path.write_text("x") if key == "dead_file" else path.mkdir())
        old = time.time() - LEGACY_PART_AGE_S - 60
        for key in ("legacy_old", "legacy_other_target"):
            os.utime(tmp_path / names[key], (old, old))
        removed = clean_stale_parts(tmp_path, "s")
        assert sorted(p.name for p in removed) == sorted([names["dead_dir"], names["dead_file"], names["legacy_old"]])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            names[k] for k in ("live", "other_host", "legacy_new", "legacy_other_target", "unrelated"))
    finally:
        live.kill()
        live.wait()


def test_outputs_get_the_usual_modes(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            with atomic_path(tmp / "f.txt") as f:
                f.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "d" / "f.txt").stat().st_mode & 0o777 == 0o640


def test_atomic_dir_without_replace_keeps_a_folder_written_meanwhile(tmp_path):
    target = tmp_path / "chips"
    with atomic_dir(target, replace=False) as tmp:
        (tmp / "mine").write_text("first")
    assert (target / "mine").read_text() == "first"  # missing: moved in as usual
    with atomic_dir(target, replace=False) as tmp:
        (tmp / "late").write_text("second")  # another process's copy was there first: it stays
    assert sorted(p.name for p in target.iterdir()) == ["mine"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips"]  # nothing left behind
    with atomic_dir(target) as tmp:  # the default still replaces
        (tmp / "new").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def _txt(entry):
    return entry.suffix == ".txt" and entry.is_file()


def test_atomic_dir_with_ours_never_deletes_what_it_did_not_write(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "old.txt").write_text("earlier run")
    (keep / "notes.txt").write_text("the user's")
    (keep / "photo.jpg").write_text("the user's")
    message = f"{keep}: holds photo.jpg, which tally did not write; give a new or empty folder"
    with pytest.raises(FloodwatchError) as err:
        check_replaceable(keep, _txt, "tally")
    assert str(err.value) == message
    entered = []
    with pytest.raises(FloodwatchError) as err:
        with atomic_dir(keep, ours=_txt, writer="tally") as tmp:
            entered.append(tmp)
    assert str(err.value) == message and not entered  # refused before the block runs
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt", "old.txt", "photo.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # nothing left beside it


def test_atomic_dir_with_ours_checks_again_before_replacing(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "old.txt").write_text("earlier run")
    with pytest.raises(FloodwatchError, match=r"holds notes\.md, which tally did not write"):
        with atomic_dir(keep, ours=_txt, writer="tally") as tmp:
            (tmp / "new.txt").write_text("this run")
            (keep / "notes.md").write_text("put there while the run worked")
    assert sorted(p.name for p in keep.iterdir()) == ["notes.md", "old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


@pytest.mark.parametrize("earlier", [[], ["old.txt", "new.txt"]], ids=["empty", "earlier-outputs"])
def test_atomic_dir_with_ours_replaces_an_empty_folder_or_an_earlier_run(tmp_path, earlier):
    keep = tmp_path / "keep"
    keep.mkdir()
    for name in earlier:
        (keep / name).write_text("earlier run")
    assert check_replaceable(keep, _txt, "tally") == keep
    with atomic_dir(keep, ours=_txt, writer="tally") as tmp:
        (tmp / "new.txt").write_text("this run")
    assert sorted(p.name for p in keep.iterdir()) == ["new.txt"]
    assert (keep / "new.txt").read_text() == "this run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_a_folder_named_like_an_output_is_not_ours(tmp_path):
    keep = tmp_path / "keep"
    (keep / "data.txt").mkdir(parents=True)  # a folder, not a file this output consists of
    (keep / "data.txt" / "inside").write_text("the user's")
    with pytest.raises(FloodwatchError, match="holds data.txt, which"):
        check_replaceable(keep, _txt, "tally")
    assert (keep / "data.txt" / "inside").exists()


def test_an_output_that_is_an_input_by_any_name_is_refused(tmp_path, monkeypatch):
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    (tmp_path / "link.pt").symlink_to(model)
    os.link(model, tmp_path / "hard.pt")
    monkeypatch.chdir(tmp_path)
    for same in (model, "m.pt", "./m.pt", tmp_path / "sub" / ".." / "m.pt", "link.pt", "hard.pt"):
        with pytest.raises(DataError, match=rf"^-o: {re.escape(str(Path(same)))} is an input of this run"):
            check_not_input(same, None, tmp_path, model, name="-o", error=DataError)
    with pytest.raises(FloodwatchError, match=r"^link\.pt is an input of this run \(m\.pt\)"):
        check_not_input("link.pt", "m.pt")
    # another file, or one not there yet that no input names
    assert str(check_not_input("other.pt", model, "missing.pt", None)) == "other.pt"
    assert model.read_bytes() == b"weights"
