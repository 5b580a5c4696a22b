"""Every command line the user documentation shows names a command and options that exist: a renamed flag
(prune --threshold -> --norm-threshold, data preview --n -> -n/--chips) must not live on in the docs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from floodwatch.cli.main import _register_all, app

ROOT = Path(__file__).resolve().parents[2]
# docs/benchmarks.md is a dated log: its command lines are what ran then, kept as history
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")
# `floodwatch CMD [SUB] ...` up to what ends a command line in Markdown or bash: a comment, a closing tick, a
# pipe, `&&` or `;`; `floodwatch` in prose ("floodwatch covers ...") names no command and is skipped below
COMMAND = re.compile(r"floodwatch((?: [a-z][a-z-]*){1,2})([^`#|&;]*)")
FLAG = re.compile(r"(?<![\w/.=-])(--?[A-Za-z][\w-]*)")


def _root():
    _register_all()
    return typer.main.get_command(app)


def command_lines(text: str) -> list[tuple[int, list[str], str]]:
    """(line number, the words after `floodwatch`, the rest of the command line) for each command line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [(number, m.group(1).split(), m.group(2)) for m in COMMAND.finditer(line)]
    return found


def undefined_flags(root, words: list[str], rest: str) -> tuple[str | None, list[str]]:
    """The command the words name (None when they name none) and the flags in `rest` it does not take."""
    command, path = root, []
    for word in words:
        # typer's groups need not be click.Group instances (typer may carry its own click)
        if word not in getattr(command, "commands", {}):
            rest = " ".join(words[len(path):]) + " " + rest
            break
        command, path = command.commands[word], path + [word]
    if not path:
        return None, []
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    return " ".join(path), [flag for flag in FLAG.findall(rest) if flag not in known]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_command_lines_use_existing_options(doc):
    root = _root()
    wrong = []
    for number, words, rest in command_lines(doc.read_text(encoding="utf-8")):
        name, bad = undefined_flags(root, words, rest)
        wrong += [f"{doc.name}:{number}: floodwatch {name}: no option {flag}" for flag in bad]
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_renamed_option():
    root = _root()
    (_, words, rest), = command_lines("floodwatch prune -m a.pt -o b.pt --threshold 0.1  # old name")
    assert undefined_flags(root, words, rest) == ("prune", ["--threshold"])
    (_, words, rest), = command_lines("`floodwatch data preview DIR -o g.png --n 4`")
    assert undefined_flags(root, words, rest) == ("data preview", ["--n"])
    (_, words, rest), = command_lines("floodwatch data preview DIR -o g.png -n 4 --chips 4")
    assert undefined_flags(root, words, rest) == ("data preview", [])
    (_, words, rest), = command_lines("floodwatch covers the whole path --fast")  # prose, not a command
    assert undefined_flags(root, words, rest) == (None, [])
