"""`floodwatch --help` and the groups' help as a newcomer reads them: commands in panels, one line each."""
from __future__ import annotations

import re


def _panels(text: str) -> dict[str, list[str]]:
    """Panel title -> its rows as printed (a row whose name cell is blank continues the row above)."""
    panels: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        head = re.match(r"╭─ (.+?) ─", line)
        if head:
            title = head.group(1)
            panels[title] = []
        elif line.startswith("╰"):
            title = None
        elif title is not None and line.startswith("│"):
            panels[title].append(line)
    return panels


def test_the_top_level_help_groups_the_commands_one_line_each(run_cli, monkeypatch):
    """infer, map, client, web and run took 2-4 lines each in one flat list of 17 commands."""
    from floodwatch.cli.main import PANELS

    monkeypatch.setenv("COLUMNS", "100")  # a terminal a little wider than the classic 80
    panels = _panels(run_cli("--help").stdout)
    assert [t for t in panels if t != "Options"] == list(PANELS)
    for title, names in PANELS.items():
        rows = panels[title]
        assert [r.split()[1] for r in rows] == [n for n in names if n not in ("data", "spec", "models", "aoi")] \
            + [n for n in names if n in ("data", "spec", "models", "aoi")], title  # typer lists groups last
        assert all(not r[2].isspace() for r in rows), f"a description in {title} takes more than one line"
    assert panels["Commands"][0].split()[1] == "demo"  # where a newcomer starts


def test_every_command_list_shows_one_line_per_command(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    for group in ("data", "spec", "aoi", "models"):
        rows = _panels(run_cli(group, "--help").stdout)["Commands"]
        assert all(not r[2].isspace() for r in rows), f"{group}: a description takes more than one line"


def test_a_commands_own_help_keeps_its_whole_description(run_cli):
    out = run_cli("infer", "--help").stdout
    assert "_mask.tif (1 water, 0 not, 255 no data)" in out


def _paths():
    import typer

    from floodwatch.cli import main

    main._register_all()
    root = typer.main.get_command(main.app)
    for name, cmd in root.commands.items():
        yield from (((name, sub) for sub in cmd.commands) if hasattr(cmd, "commands") else [(name,)])


def test_each_commands_description_wraps_as_one_text(run_cli, monkeypatch):
    """typer kept the docstring's line breaks after its first paragraph and the terminal wrapped those lines
    again: at 80 columns `train --help` read '... rounds' / '(RESULTS_DIR/NAME/round_<r>/,' / 'semi...'."""
    monkeypatch.setenv("COLUMNS", "80")
    paths = list(_paths())
    assert len(paths) >= 30
    for path in paths:
        out = run_cli(*path, "--help").stdout
        prose = out[out.index("Usage:"):out.index("╭")].splitlines()[2:]
        paragraph: list[str] = []
        for line in [*prose, ""]:
            if line.strip():
                paragraph.append(line.rstrip())
                continue
            short = [ln for ln in paragraph[:-1] if len(ln) < 55]
            assert not short, f"{' '.join(path)} --help: a line broken early: {short[0]!r}"
            paragraph = []
