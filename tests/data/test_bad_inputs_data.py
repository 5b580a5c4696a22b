"""Bad input to `floodwatch data ...`: the catalogue (see tests/bad_inputs.py)."""
from __future__ import annotations

import pytest

from tests.bad_inputs import (BINARY, Case, binary_file, check, first_image, first_label, params, plain_file,
                              rewrite_raster, sen1floods11_copy)

from . import fakes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_data")
    good = fakes.sen1floods11(d / "good", chips=3)
    f = {"good": good, "file": plain_file(d / "a_file"), "binary_csv": binary_file(d / "split.csv"),
         "folder": d / "a_folder"}
    f["folder"].mkdir()
    f["kept"] = d / "kept"
    f["kept"].mkdir()
    (f["kept"] / "notes.txt").write_text("the user's")
    f["binary_split_list"] = sen1floods11_copy(good, d / "binary_list", lambda i, l: None)
    binary_file(f["binary_split_list"] / "splits" / "flood_valid_data.txt")
    f["label_crs"] = sen1floods11_copy(good, d / "label_crs", lambda i, l: rewrite_raster(l, l, crs="EPSG:32634"))
    f["label_shifted"] = sen1floods11_copy(good, d / "label_shifted", lambda i, l: rewrite_raster(l, l, shift_px=3))
    f["int8"] = sen1floods11_copy(good, d / "int8", lambda i, l: rewrite_raster(i, i, dtype="int8"))
    for name in ("label_crs", "label_shifted"):
        f[name + "_label"] = first_label(f[name])
    f["int8_image"] = first_image(f["int8"])
    ids = sorted(p.name[:-len("_S1Hand.tif")] for p in (good / "S1Hand").glob("*.tif"))
    f["evil_csv"], f["nomatch_csv"] = d / "split_evil.csv", d / "split_nomatch.csv"
    f["evil_csv"].write_text(f"id,split\n{ids[0]},train\n{ids[1]},../../evil\n")
    f["nomatch_csv"].write_text("id,split\nnope,train\nnada,val\n")
    f["header_csv"] = d / "split_header.csv"
    f["header_csv"].write_text("id,split\n")
    f["victim"] = binary_file(d / "victim.pt")  # a checkpoint, as far as a refused run may know
    return f


CASES = [
    # non-UTF-8 text where text is read
    Case("split-list-binary", "data inspect {binary_split_list}",
         ("{binary_split_list}/splits/flood_valid_data.txt", "not UTF-8")),
    Case("split-list-binary-stats", "data stats {binary_split_list} -o {out}.json",
         ("flood_valid_data.txt", "not UTF-8"), absent=("{out}.json",)),
    Case("split-csv-binary", "data convert {good} {out} --split-csv {binary_csv}", ("{binary_csv}", "not UTF-8")),
    # an output path under a regular file
    Case("stats-out-under-file", "data stats {good} -o {file}/x.json", ("{file} is a file",)),
    Case("split-out-under-file", "data split {good} -o {file}/x.csv", ("{file} is a file",)),
    Case("convert-out-under-file", "data convert {good} {file}/c", ("{file} is a file",)),
    Case("synth-out-under-file", "data synth {file}/s --chips 2 --size 32", ("{file} is a file",)),
    Case("synth-size-negative", "data synth {out} --scene --size -100", ("--size", "Invalid value")),
    Case("synth-scene-with-chips", "data synth {out} --scene --chips 5", ("--chips: --scene writes one scene",)),
    Case("synth-scene-over-checkpoint", "data synth {victim} --scene --size 32",
         ("OUT {victim}: the file written is a GeoTIFF", ".tif or .tiff"), absent=()),
    Case("preview-out-under-file", "data preview {good} -o {file}/p.png", ("{file} is a file",)),
    Case("inspect-json-under-file", "data inspect {good} -o {file}/r.json", ("{file} is a file",)),
    # an output named as an existing folder, or where no file can be made (root may write anywhere but /proc)
    Case("inspect-json-is-folder", "data inspect {good} -o {folder}", ("{folder}", "is a folder")),
    Case("stats-out-is-folder", "data stats {good} -o {folder}", ("{folder}", "is a folder")),
    Case("split-out-is-folder", "data split {good} -o {folder}", ("{folder}", "is a folder")),
    Case("preview-out-is-folder", "data preview {good} -o {folder}", ("{folder}", "is a folder")),
    Case("synth-out-is-file", "data synth {file} --chips 2 --size 32", ("{file}", "is a file")),
    Case("inspect-json-unwritable", "data inspect {good} --json /proc/floodwatch.json", ("/proc/floodwatch.json",)),
    Case("stats-out-unwritable", "data stats {good} -o /proc/floodwatch.json", ("/proc/floodwatch.json",)),
    Case("split-out-unwritable", "data split {good} -o /proc/floodwatch.csv", ("/proc/floodwatch.csv",)),
    Case("preview-out-unwritable", "data preview {good} -o /proc/floodwatch.png", ("/proc/floodwatch.png",)),
    Case("synth-out-unwritable", "data synth /proc/floodwatch --chips 2 --size 32", ("/proc/floodwatch",)),
    Case("convert-out-unwritable", "data convert {good} /proc/floodwatch", ("/proc/floodwatch",)),
    # an output folder holding the user's own files is refused, not replaced with them in it
    # seeds and counts out of range: typer names the flag (numpy raised a ValueError; --n -3 drew every chip)
    Case("preview-seed-negative", "data preview {good} -o {out}.png --seed -5", ("--seed", "Invalid value"),
         absent=("{out}.png",)),
    Case("split-seed-negative", "data split {good} -o {out}.csv --seed -1", ("--seed", "Invalid value"),
         absent=("{out}.csv",)),
    Case("synth-seed-negative", "data synth {out} --chips 2 --size 32 --seed -1", ("--seed", "Invalid value")),
    Case("preview-n-negative", "data preview {good} -o {out}.png --chips -3", ("--chips", "Invalid value"),
         absent=("{out}.png",)),
    Case("preview-n-zero", "data preview {good} -o {out}.png -n 0", ("-n", "Invalid value"),
         forbid=("Traceback", "no chip with valid pixels"), absent=("{out}.png",)),
    # a name saying another format than the one written (PNG bytes in a .jpg, CSV in a .json)
    Case("preview-out-jpg", "data preview {good} -o {out}.jpg", ("-o {out}.jpg", ".png"), absent=("{out}.jpg",)),
    Case("preview-out-txt", "data preview {good} -o {out}.txt", ("-o {out}.txt", ".png"), absent=("{out}.txt",)),
    Case("split-out-json", "data split {good} -o {out}.json", ("-o {out}.json", ".csv"), absent=("{out}.json",)),
    Case("stats-plot-jpg", "data stats {good} --plot {out}.jpg", ("--plot {out}.jpg", ".png"), absent=("{out}.jpg",)),
    # JSON written over a checkpoint (exit 0) before the name had to say JSON
    Case("inspect-json-over-checkpoint", "data inspect {good} -o {victim}", ("-o {victim}", ".json"), absent=()),
    Case("stats-out-over-checkpoint", "data stats {good} -o {victim}", ("-o {victim}", ".json"), absent=()),
    # counts out of range: --plot-chips 0 was a matplotlib traceback, --max-pixels 0 sampled one pixel a chip
    Case("stats-plot-chips-zero", "data stats {good} --plot {out}.png --plot-chips 0",
         ("--plot-chips", "Invalid value"), absent=("{out}.png",)),
    Case("stats-plot-chips-negative", "data stats {good} --plot {out}.png --plot-chips -3",
         ("--plot-chips", "Invalid value"), absent=("{out}.png",)),
    Case("stats-max-pixels-zero", "data stats {good} -o {out}.json --max-pixels 0", ("--max-pixels", "Invalid value"),
         absent=("{out}.json",)),
    # NaN passed every bound and put every chip in train
    Case("split-fractions-nan", "data split {good} -o {out}.csv --fractions=nan,0.5,0.5",
         ("--fractions: need 2 or 3 non-negative numbers summing to 1, got (nan",), absent=("{out}.csv",)),
    # the library's messages start with its parameter's name, which becomes the flag ("split block 0" named none)
    Case("split-block-zero", "data split {good} -o {out}.csv --method blocked --block 0",
         ("--block: must be a whole number >= 1, got 0",), absent=("{out}.csv",)),
    Case("stats-split-unknown", "data stats {good} -o {out}.json --split bogus",
         ("--split: 'bogus' is not one of train, val, test",), absent=("{out}.json",)),
    Case("synth-into-kept-folder", "data synth {kept} --chips 2 --size 32", ("{kept}", "notes.txt"), absent=()),
    Case("convert-into-kept-folder", "data convert {good} {kept}", ("{kept}", "notes.txt"), absent=()),
    # a split CSV naming a path for a split (images/../../evil), or no chip of the data set
    Case("convert-split-name-path", "data convert {good} {out} --split-csv {evil_csv}",
         ("{evil_csv}", "'../../evil'", "plain folder name")),
    Case("convert-split-csv-no-chip", "data convert {good} {out} --split-csv {nomatch_csv}",
         ("{nomatch_csv}", "none of its 2 id(s)", "'nope'")),
    Case("convert-split-csv-header-only", "data convert {good} {out} --split-csv {header_csv}",
         ("{header_csv}", "lists no chip")),  # it converted every chip, as if no CSV were given
    # a label on another grid than its image (same size), and integer chips: refused by every reader
    Case("label-other-crs-inspect", "data inspect {label_crs}", ("{label_crs_label}", "CRS")),
    Case("label-other-crs-stats", "data stats {label_crs} -o {out}.json", ("{label_crs_label}", "CRS"),
         absent=("{out}.json",)),
    Case("label-shifted-inspect", "data inspect {label_shifted}", ("{label_shifted_label}", "transform")),
    Case("label-shifted-stats", "data stats {label_shifted} -o {out}.json", ("{label_shifted_label}", "transform"),
         absent=("{out}.json",)),
    Case("int8-chip-inspect", "data inspect {int8}", ("{int8_image}", "int8")),
    Case("int8-chip-stats", "data stats {int8} -o {out}.json", ("{int8_image}", "int8"), absent=("{out}.json",)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case, files, run_cli, tmp_path):
    check(case, files, run_cli, tmp_path)
    assert files["victim"].read_bytes() == BINARY
