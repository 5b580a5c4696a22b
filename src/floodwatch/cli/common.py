"""What the commands share: hidden flag aliases, the allowed values of enumerated options, -q/--quiet, a
console that never cuts names or paths, and what -m/--model means."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

# piped output (no terminal) would be cut at rich's default 80 columns; a wide console keeps each row whole
PIPE_WIDTH = 1000


def make_console(stderr: bool = False) -> Console:
    """A rich console that is as wide as the terminal, or PIPE_WIDTH columns when the output is not one."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def esc(value: Any) -> str:
    """User-facing text (paths, names, extras such as floodwatch[dali]) made literal for rich markup."""
    return escape(str(value))


def aliased(aliases: dict[str, str]) -> type[typer.core.TyperCommand]:
    """A command class that also accepts old flag spellings (`--out` for `--output`) without showing them
    in --help: they are rewritten before click parses the arguments."""

    class AliasedCommand(typer.core.TyperCommand):
        hidden_aliases = dict(aliases)

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            rewritten, literal = [], False
            for arg in args:
                if not literal and arg == "--":
                    literal = True
                elif not literal:
                    name, eq, value = arg.partition("=")
                    if name in self.hidden_aliases:
                        arg = self.hidden_aliases[name] + eq + value
                rewritten.append(arg)
            return super().parse_args(ctx, rewritten)

    return AliasedCommand


OUT_ALIAS = aliased({"--out": "--output"})
#: evaluate's old spelling of --batch, the name map and change already used
BATCH_SIZE = {"--batch-size": "--batch"}

QUIET = typer.Option(False, "-q", "--quiet",
                     help="No progress bars or progress messages; errors and results still print.")


class Backend(str, Enum):
    """Model back-end of evaluate and infer."""
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


class MapBackend(str, Enum):
    """Model back-end of map (which can also call a Triton server)."""
    auto = "auto"
    torch = "torch"
    onnx = "onnx"
    triton = "triton"


class Units(str, Enum):
    db = "db"
    linear = "linear"


class AssetUnits(str, Enum):
    """Units of STAC assets (fetch, run, aoi watch): auto is what the source says, else found per item."""
    auto = "auto"
    db = "db"
    linear = "linear"


class Protocol(str, Enum):
    http = "http"
    grpc = "grpc"


class Probability(str, Enum):
    uint8 = "uint8"
    float32 = "float32"


class DataFormat(str, Enum):
    """Dataset layouts floodwatch reads (floodwatch.data.FORMATS)."""
    sen1floods11 = "sen1floods11"
    etci = "etci"
    ombria = "ombria"
    stac_overflow = "stac_overflow"
    folders = "folders"
    synthetic = "synthetic"


def value(choice: Enum | None) -> str | None:
    """The plain string of an enumerated option (the library takes strings)."""
    return None if choice is None else choice.value


MODEL_HELP = ("A .pt/.onnx file, a name from `floodwatch models list`, or https://.../FILE#sha256=HEX "
              "(downloaded once, verified); default: the default model.")
#: -m of the commands that change a model (export, prune): they start from its fp32 checkpoint
CHECKPOINT_HELP = ("A floodwatch checkpoint (.pt), a name from `floodwatch models list` (its checkpoint), or "
                   "https://.../FILE#sha256=HEX")


def resolve_checkpoint(ref: str | None) -> Path:
    """-m of export and prune -> a local checkpoint; an ONNX file is refused by name (nothing to start from)."""
    from ..errors import ExportError

    path = resolve_models(ref, "checkpoint")[0]
    if path.suffix.lower() == ".onnx":
        raise ExportError(f"{path}: is an ONNX file; give the checkpoint (.pt) it was exported from")
    return path


def check_output_named(output: Path, suffix: str | tuple[str, ...], kind: str, flag: str = "-o") -> None:
    """Before the work: the output file can be written, and its name says the format written (not PNG bytes in
    a .jpg, nor JSON over a checkpoint.pt). `suffix`: one, or the spellings allowed (".yaml", ".yml")."""
    from ..errors import DataError
    from ..io import check_output_file

    check_output_file(output)
    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    if output.suffix.lower() not in suffixes:
        raise DataError(f"{flag} {output}: the file written is {kind}; give a name ending in "
                        f"{' or '.join(suffixes)}")


#: = config.MAX_SEED, written out so the CLI starts without importing config (a test checks they agree)
MAX_SEED = 2**32 - 1
#: = config.SPLIT_SEED, likewise
SPLIT_SEED = 42


def resolve_models(refs: list[str] | str | None, kind: str) -> list[Path]:
    """-m values (none: the default model) -> local files; `kind` picks a registered model's checkpoint or
    ONNX file (floodwatch.models.zoo.resolve_model)."""
    from ..errors import NoDefaultModelError
    from ..models.zoo import resolve_model

    refs = [refs] if isinstance(refs, str) else list(refs or [None])
    try:
        return [resolve_model(r, kind) for r in refs]
    except NoDefaultModelError as exc:
        raise NoDefaultModelError(f"{exc}: give -m/--model with a model file, a name from `floodwatch models list`, "
                                  "or URL#sha256=HEX") from None
