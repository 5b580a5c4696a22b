"""The web page's scripts run under Node with a stand-in DOM (no browser): the history chart's series and
the record a link's date selects. Skipped where Node is not installed."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import floodwatch.monitoring.web as web

STATIC = Path(web.__file__).parent / "static"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed")

#: just enough of the DOM for chart.js: elements that keep their tag, attributes and children
FAKE_DOM = """
class El { constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.textContent = ""; }
  setAttribute(k, v) { this.attrs[k] = String(v); } appendChild(c) { this.children.push(c); return c; }
  addEventListener() {} set innerHTML(_) { this.children = []; } }
globalThis.document = { createElementNS: (_, tag) => new El(tag) };
function all(el) { return [el, ...el.children.flatMap(all)]; }
"""


def _node(script: str) -> object:
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _records(kinds: str) -> list[dict]:
    return [{"acquired": f"2024-05-{k + 1:02d}T10:00:00Z", "kind": "change" if c == "c" else "map",
             "flooded_km2": 10.0 + k, "permanent_water_km2": None if c == "c" else 2.0} for k, c in enumerate(kinds)]


def test_change_records_are_their_own_series_not_joined_to_the_flood_extent():
    """A change record's flooded_km2 is new water, not the flood's extent: one line through both kinds
    zig-zagged between two different quantities."""
    records = _records("mmcmc")
    script = FAKE_DOM + (STATIC / "chart.js").read_text() + f"""
    const svg = new El("svg");
    drawHistoryChart(svg, {json.dumps(records)});
    const lines = all(svg).filter((e) => e.tag === "polyline").map((e) => [e.attrs.class, e.attrs.points.split(" ").length]);
    const dots = all(svg).filter((e) => e.tag === "circle").map((e) => [e.attrs.class, Number(e.attrs["data-index"])]);
    console.log(JSON.stringify({{lines, dots}}));
    """
    out = _node(script)
    lines = dict(out["lines"])
    assert lines == {"series flooded": 3, "series permanent": 3, "series new": 2}
    new_dots = sorted(i for cls, i in out["dots"] if cls.startswith("dot new"))
    assert new_dots == [2, 4]


def _record_at(records: list[dict], iso: str) -> int:
    source = (STATIC / "app.js").read_text()
    function = re.search(r"^function recordAt\(iso\) \{.*?^\}", source, re.M | re.S).group(0)
    return _node(f"const state = {{records: {json.dumps(records)}}};\n{function}\n"
                 f"console.log(JSON.stringify(recordAt({json.dumps(iso)})));")


@pytest.mark.parametrize("iso, index", [
    ("2024-05-02", 1),                   # a date alone: that day's record, not the day before's
    ("2024-05-02T10:00:00Z", 1),
    ("2024-05-02T09:59:59Z", 0),
    ("2024-05-02T12:00:00+02:00", 1),    # 10:00 UTC
    ("2024-05-02T11:59:00+02:00", 0),
    ("2024-04-30", -1),
    ("not a date", -1),
])
def test_a_links_date_selects_the_record_at_or_before_it_in_time(iso, index):
    assert _record_at(_records("mmm"), iso) == index
