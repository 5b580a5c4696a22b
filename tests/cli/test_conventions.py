"""CLI conventions every command keeps (issue 16): one output flag, hidden old spellings, allowed values and
help text on every option, -q on long commands, brackets printed as typed, rows never cut."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest
import typer

from floodwatch.cli.common import PIPE_WIDTH, DataFormat, make_console


# typer carries its own copy of click: commands, groups and parameters are told apart by duck typing
def _root():
    from floodwatch.cli import main

    if not main.app.registered_commands:
        main._register_all()
    return typer.main.get_command(main.app)


def test_commands_are_registered_once_however_often_main_runs(run_cli):
    from floodwatch.cli import main

    assert run_cli("--version").returncode == 0
    counts = len(main.app.registered_commands), len(main.app.registered_groups)
    assert counts[0] + counts[1] >= 10  # every command family
    for _ in range(3):  # each call used to add every command again, and typer rebuilt them all per call
        assert run_cli("--version").returncode == 0
    assert (len(main.app.registered_commands), len(main.app.registered_groups)) == counts


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def _command(*path: str):
    return dict(_commands(_root()))[path]


def _options(cmd) -> list:
    return [p for p in cmd.params if p.param_type_name == "option" and p.name != "help"]


def test_every_option_and_argument_has_help_text():
    missing = [f"{' '.join(path)} {p.opts[0] if p.param_type_name == 'option' else p.name.upper()}"
               for path, cmd in _commands(_root()) for p in cmd.params
               if p.name != "help" and not (getattr(p, "help", None) or "").strip()]
    assert len(list(_commands(_root()))) >= 25
    assert missing == []


#: flags whose values are a fixed set, wherever a command has them
ENUMERATED = {"--backend", "--units", "--precision", "--format", "--probability", "--norm", "--protocol",
              "--method", "--triton-kind", "--exporter", "--calibrate-format", "--to"}


def test_enumerated_options_are_choices_everywhere():
    seen, not_choice = set(), []
    for path, cmd in _commands(_root()):
        for p in _options(cmd):
            flag = next((o for o in p.opts if o in ENUMERATED), None)
            if flag:
                seen.add(flag)
                annotation = p.type_descriptor.annotation
                if not (isinstance(annotation, type) and issubclass(annotation, Enum)):
                    not_choice.append(f"{' '.join(path)} {flag}")
    assert not_choice == []
    assert {"--backend", "--units", "--precision", "--format", "--probability", "--norm"} <= seen


@pytest.mark.parametrize("argv, shown", [
    (("export", "--help"), ["<onnx|tensorrt>", "<fp32|fp16|int8>", "<auto|dynamo|torchscript>"]),
    (("prune", "--help"), ["<l1|l2>"]),
    (("map", "--help"), ["<auto|torch|onnx|triton>", "<db|linear>", "<uint8|float32>", "<http|grpc>"]),
    (("evaluate", "--help"), ["<auto|torch|onnx>", "<sen1floods11|etci|ombria|stac_overflow|folders|synthetic>"]),
    (("change", "--help"), ["<difference|bitemporal|logratio>"]),
])
def test_help_shows_the_allowed_values(run_cli, argv, shown):
    r = run_cli(*argv)
    assert r.returncode == 0
    for text in shown:
        assert text in r.stdout, text
    assert "<str>" not in " ".join(line for line in r.stdout.splitlines()
                                   if any(f in line for f in ("--backend", "--units", "--format", "--precision")))


def test_dataset_format_choices_are_the_readers():
    from floodwatch.data import FORMATS

    assert [f.value for f in DataFormat] == list(FORMATS)


def test_one_output_flag_and_old_spellings_hidden():
    for path, cmd in _commands(_root()):
        flags = {o for p in _options(cmd) for o in p.opts}
        assert "--out" not in flags, path
        if "-o" in flags:
            assert "--output" in flags, path
        for alias, target in getattr(cmd, "hidden_aliases", {}).items():
            assert alias not in flags and target in flags, (path, alias)
    assert _command("client").hidden_aliases == {"--out": "--output", "--model": "--triton-model"}
    # one thing, one name across commands: the repository export writes, the polygon fetch/run take
    assert _command("serve").hidden_aliases == {"--triton-repo": "--model-repository"}
    assert _command("aoi", "add").hidden_aliases == {"--aoi": "--geojson"}
    # the Triton model name has one spelling; -m/--model is a model file wherever it exists
    for path in (("client",), ("map",), ("export",)):
        assert "--triton-model" in {o for p in _options(_command(*path)) for o in p.opts}, path
    assert "--model" not in {o for p in _options(_command("client")) for o in p.opts}


def test_old_out_flag_still_works(run_cli, tmp_path, tiny_checkpoint):
    out = tmp_path / "pruned.pt"
    r = run_cli("prune", "-m", tiny_checkpoint, "--out", out, "--ratio", "0.5")
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    r = run_cli("prune", "-m", tiny_checkpoint, f"--out={tmp_path / 'eq.pt'}", "--ratio", "0.5")
    assert r.returncode == 0 and (tmp_path / "eq.pt").is_file(), r.stderr
    assert "--out " not in run_cli("prune", "--help").stdout


LONG = [("map",), ("evaluate",), ("infer",), ("train",), ("export",), ("demo",), ("client",), ("aoi", "watch"),
        ("data", "inspect"), ("data", "stats"), ("data", "convert")]


@pytest.mark.parametrize("path", LONG, ids=" ".join)
def test_long_commands_take_quiet(path):
    flags = {o for p in _options(_command(*path)) for o in p.opts}
    assert {"-q", "--quiet"} <= flags


def test_bracketed_path_survives_in_an_error(run_cli, tmp_path):
    folder = tmp_path / "floodwatch[dali]"
    folder.mkdir()
    r = run_cli("data", "inspect", folder)
    assert r.returncode == 2
    assert f"{folder}: " in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_piped_console_is_wide():
    console = make_console()  # pytest captures stdout: not a terminal
    if "COLUMNS" not in os.environ:
        assert console.width == PIPE_WIDTH


def test_long_bracketed_scene_name_is_whole_when_piped(tmp_path, tiny_checkpoint):
    """A real pipe, no COLUMNS: the results row keeps the full scene name and output path on one line."""
    from tests.mapping.helpers import make_scene

    name = "S1A_IW_GRDH_1SDV_20240501T052345_20240501T052410_053679_0685A1_[flood-event-2024]_rtc_vv_vh"
    make_scene(tmp_path / f"{name}.tif", 40, 40)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "floodwatch", "map", str(tmp_path / f"{name}.tif"), "-m",
                        str(tiny_checkpoint), "-o", str(tmp_path / "out"), "--tile", "64", "--overlap", "16", "-q"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if name in line)
    assert f"{name}.tif" in row and str(tmp_path / "out" / name) in row
    assert "…" not in r.stdout


def test_export_prints_a_summary_and_json_on_request(run_cli, tmp_path, tiny_checkpoint):
    r = run_cli("export", "-m", tiny_checkpoint, "-o", tmp_path / "m.onnx", "--exporter", "torchscript")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) <= 5 and "wrote" in lines[0] and "parity" in lines[0]
    assert "{" not in r.stdout
    r = run_cli("export", "-m", tiny_checkpoint, "--out", tmp_path / "j.onnx", "--exporter", "torchscript",
                "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["onnx_export"]["parity"]["mask_agreement"] > 0.99
    assert (tmp_path / "j.onnx").is_file()


def test_triton_repo_with_an_empty_name_names_the_new_flag(run_cli, tmp_path, tiny_checkpoint):
    # (without --triton-model the name is 'flood', serve's and map's default)
    r = run_cli("export", "-m", tiny_checkpoint, "-o", tmp_path / "m.onnx", "--triton-repo", tmp_path / "repo",
                "--model-name", "")
    assert r.returncode == 2 and "--triton-model" in r.stderr and "--model-name" not in r.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_map_overlap_default_is_the_library_default():
    """`--overlap` is written out in cli/options.py so the CLI starts without numpy; it must stay the library's."""
    import inspect

    from floodwatch.cli import options
    from floodwatch.inference.tiling import DEFAULT_OVERLAP, default_overlap
    from floodwatch.mapping import map_scene
    from floodwatch.monitoring.run import run_aoi
    from floodwatch.monitoring.stac import watch_aoi

    assert options.OVERLAP.default == DEFAULT_OVERLAP
    assert inspect.signature(map_scene).parameters["overlap"].default == DEFAULT_OVERLAP
    for fn in (run_aoi, watch_aoi):  # no --overlap flag: None is default_overlap(tile), the same at the default tile
        params = inspect.signature(fn).parameters
        assert params["overlap"].default is None
        assert default_overlap(params["tile"].default) == DEFAULT_OVERLAP


def test_cli_and_light_modules_start_without_torch():
    """torch takes seconds to import: the CLI's start-up, the tiling constants and monitoring load it only when
    a model runs (inference/__init__.py resolves its names on first use)."""
    import subprocess
    import sys

    code = ("import sys, floodwatch.cli.main, floodwatch.inference.tiling, floodwatch.monitoring.run, "
            "floodwatch.monitoring.stac; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _flags_of(cmd) -> set[str]:
    return {o for p in _options(cmd) for o in p.opts}


def test_batch_has_one_name_and_the_other_spelling_is_hidden(run_cli):
    with_batch = {path for path, cmd in _commands(_root()) if "--batch" in _flags_of(cmd)}
    assert {("map",), ("change",), ("evaluate",)} <= with_batch
    for path, cmd in _commands(_root()):
        assert "--batch-size" not in _flags_of(cmd), path
        if path in with_batch:
            assert getattr(cmd, "hidden_aliases", {}).get("--batch-size") == "--batch", path
    for command in ("map", "change", "evaluate"):
        assert "--batch-size" not in run_cli(command, "--help").stdout
        # the hidden spelling reaches the same option: its bad value is reported under the shown name
        r = run_cli(command, "--batch-size=0")
        assert r.returncode == 2 and "'--batch'" in r.stderr, r.stderr


def test_batch_size_spelling_runs(run_cli, tmp_path, tiny_checkpoint):
    from tests.mapping.helpers import make_scene

    make_scene(tmp_path / "a.tif", 40, 40, seed=0)
    make_scene(tmp_path / "b.tif", 40, 40, seed=1)
    r = run_cli("change", "--before", tmp_path / "b.tif", "--after", tmp_path / "a.tif", "-m", tiny_checkpoint,
                "-o", tmp_path / "c", "--batch-size", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "stats.json").is_file()


def test_tile_and_db_mean_the_same_in_every_command():
    import inspect

    from floodwatch.mapping import map_scene
    from floodwatch.monitoring.change import detect_change
    from floodwatch.monitoring.store import DEFAULT_DB

    def param(path, name):
        return next(p for p in _command(*path).params if p.name == name)

    tiles = {param(path, "tile").default for path in (("map",), ("change",), ("run",), ("aoi", "watch"))}
    assert tiles == {inspect.signature(map_scene).parameters["tile"].default,
                     inspect.signature(detect_change).parameters["tile"].default}
    helps = {param(path, "db").help for path in (("map",), ("change",), ("aoi", "list"), ("aoi", "watch"))}
    assert len(helps) == 1 and str(DEFAULT_DB) in helps.pop()


def test_seed_bound_is_the_library_bound():
    """`--seed`'s bound is written out in cli/common.py so the CLI starts without config; it must stay the spec's."""
    from floodwatch.cli import common
    from floodwatch.config import MAX_SEED

    assert common.MAX_SEED == MAX_SEED


def test_data_split_draws_the_split_a_spec_draws(tmp_path, run_cli):
    """`data split` with no --seed holds out the chips that a spec with the same method and fractions holds out
    (its seed default was 0, the spec's 42: a CSV written to match a spec's split did not)."""
    import csv

    from floodwatch.cli import common
    from floodwatch.config import SPLIT_SEED, SplitConfig
    from floodwatch.data import open_dataset
    from floodwatch.data.splits import make_split
    from floodwatch.data.synthetic import write_synthetic_dataset

    assert common.SPLIT_SEED == SPLIT_SEED == SplitConfig().seed
    write_synthetic_dataset(tmp_path / "d", chips=12, size=32, seed=3)
    out = tmp_path / "s.csv"
    assert run_cli("data", "split", tmp_path / "d", "-o", out).returncode == 0
    with out.open() as f:
        written = {row["id"]: row["split"] for row in csv.DictReader(f)}
    cfg = SplitConfig()
    spec_split = make_split(open_dataset(tmp_path / "d"), cfg.method, cfg.fractions, cfg.seed)
    assert written == {i: name for name, ids in spec_split.items() for i in ids}
    assert spec_split != make_split(open_dataset(tmp_path / "d"), cfg.method, cfg.fractions, 0)  # the seed matters


def test_a_dataset_layout_is_asked_the_same_way_everywhere():
    """`--format` names a data set's layout in every command that reads one (export's names its file format)."""
    readers = (("evaluate",), ("data", "inspect"), ("data", "stats"), ("data", "convert"), ("data", "preview"))
    options = [next(p for p in _command(*path).params if p.name == "format") for path in readers]
    assert {(tuple(p.opts), p.help, p.default) for p in options} == {(("--format",), "Dataset layout (default: "
                                                                      "detected).", None)}


def test_run_and_aoi_watch_take_maps_model_options():
    """`run` and `aoi watch` map scenes as `map` does, so they take its model options (an ensemble too) under the
    same names, with
    the same help, choices and defaults (they took none: a map made with --tta or --backend onnx could not be
    made again by them)."""
    names = ("model", "backend", "url", "triton_model", "protocol", "tta", "tta_transforms", "refine", "downsample",
             "weights", "temperature")

    def spec(path):
        params = {p.name: p for p in _command(*path).params}
        return {n: (tuple(params[n].opts), params[n].help, params[n].default, params[n].type_descriptor.annotation,
                    params[n].min) for n in names if n in params}

    reference = spec(("map",))
    assert set(reference) == set(names)
    for path in (("run",), ("aoi", "watch")):
        assert spec(path) == reference, path
