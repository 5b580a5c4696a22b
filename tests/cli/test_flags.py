"""Library errors name parameters; the CLI turns them into the flags of the command that ran."""
from __future__ import annotations

import typer

from floodwatch.cli.flags import command_flags, with_flags
from floodwatch.cli.main import _register_all, app


def _flags(*argv: str) -> dict[str, str]:
    _register_all()
    return command_flags(typer.main.get_command(app), argv)


def test_flags_of_the_invoked_command_and_subcommand():
    train = _flags("train", "-e", "spec.yaml", "--gpus", "2")
    assert train["gpus"] == "--gpus" and train["experiment_spec"] == "--experiment-spec"
    add = _flags("aoi", "add", "x", "y.geojson")
    assert add["threshold_km2"] == "--threshold-km2"
    assert _flags("--version") == {} and _flags("no-such-command") == {}


def test_leading_names_and_ticked_names_become_flags():
    flags = _flags("export", "-m", "m.pt")
    assert with_flags("precision: int8 needs `calibration_data` (chips)", flags) == \
        "--precision: int8 needs --calibration-data (chips)"
    assert with_flags("max_batch_size, instances: must be >= 1", flags) == "--max-batch-size, --instances: must be >= 1"
    # paths, unknown names and prose stay as they are
    assert with_flags("data/x.tif: not a GeoTIFF", flags) == "data/x.tif: not a GeoTIFF"
    assert with_flags("nothing: `here` either", flags) == "nothing: `here` either"


def test_aliases_map_library_parameters_the_cli_names_otherwise():
    assert with_flags("predictor: method 'difference' needs a model", _flags("change", "a.tif", "b.tif")) == \
        "--model: method 'difference' needs a model"


def test_library_messages_name_no_flags():
    """Outside cli/, no string names a flag, not even in a command line for another command ("`floodwatch map
    --units linear` converts ..."): a library caller has arguments, and the CLI maps only the names of the
    command that ran. Docstrings, the demo report's command lines (<code>floodwatch train ...</code>) and
    command-line words (a string starting with --: the Triton server's own command line) aside."""
    import ast
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "floodwatch"
    hits = []
    for path in src.rglob("*.py"):
        if "cli" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        hits += [f"{path.relative_to(src)}:{n.lineno}" for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                 and "<code>floodwatch " not in n.value and not n.value.startswith("--")
                 and re.search(r"(^|[\s'\"(`\]])--[a-z]", n.value)]
    assert hits == []


def test_tta_value_errors_name_the_flag_that_gives_the_transforms():
    message = "tta: unknown transform(s) spin (known: identity, hflip)"
    for command in ("map", "evaluate", "infer"):
        assert with_flags(message, _flags(command)) == "--tta-transforms" + message[len("tta"):]
    # elsewhere a `tta` parameter is still its own flag
    assert with_flags(message, {"tta": "--tta"}).startswith("--tta: ")
