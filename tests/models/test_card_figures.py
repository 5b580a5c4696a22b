"""The shipped default model's card tells a user how its recipe scores on floods it never saw: those figures
must be docs/benchmarks.md's leave-one-event-out figures, as that file prints them, and the card's mean row
the mean of its rows."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from floodwatch.models import zoo
from floodwatch.models.card import card_markdown, read_card

from tests.models.zoo_checks import default_zoo, tiny_onnx  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = zoo.ZOO_DIR / zoo.DEFAULT_MODEL / zoo.CARD


def _loeo_rows(text: str) -> list[list[str]]:
    """The table rows of benchmarks.md's leave-one-event-out sections, split into cells."""
    start = text.index("## Floods never seen")
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text[start:].splitlines() if line.startswith("| ")]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no default model shipped")
def test_shipped_cards_unseen_event_figures_are_those_of_benchmarks_md():
    rows = _loeo_rows((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    card = read_card(SHIPPED)
    assert card.evaluation.leave_one_event_out
    for r in card.evaluation.leave_one_event_out:
        model, otsu = f"{r.model_water_iou:.3f}", f"{r.otsu_water_iou:.3f}"
        # the event's row of one table: the model's figure among its cells (seeds' values), Otsu in its last
        found = [row for row in rows if row[0] == r.held_out and row[-1].startswith(otsu)
                 and any(re.search(rf"(^|[ ,(]){re.escape(model)}([ ,)]|$)", cell) for cell in row[1:-1])]
        assert found, f"{r.held_out}: model {model}, Otsu {otsu} in no leave-one-event-out row of benchmarks.md"


def test_card_shows_the_mean_of_its_unseen_event_rows(default_zoo):
    path = default_zoo / zoo.DEFAULT_MODEL / zoo.CARD
    card = json.loads(path.read_text())
    card["evaluation"]["leave_one_event_out"] = [
        {"held_out": "A", "model_water_iou": 0.5, "otsu_water_iou": 0.25},
        {"held_out": "B", "model_water_iou": 0.25, "otsu_water_iou": 0.125}]
    path.write_text(json.dumps(card))
    assert "| **mean of 2 events** | 0.375 | 0.188 |" in card_markdown(read_card(path))
