"""What a reader of either HTML report is told about the numbers: every column defined, Otsu included."""
from __future__ import annotations

import pytest

from floodwatch.data.synthetic import synth_chips
from floodwatch.evaluation.accuracy_report import write_accuracy_report
from floodwatch.evaluation.evaluate import evaluate
from floodwatch.evaluation.report import METRIC_COLUMNS, METRIC_DEFINITIONS, write_html_report


@pytest.fixture(scope="module")
def result(oracle):
    chips = synth_chips(4, size=32, seed=3)
    return evaluate(oracle(chips), chips, progress=False)


def test_every_column_of_the_scores_table_is_defined():
    """'Otsu IoU' and 'Otsu F1' stood in the table with no word on what Otsu is."""
    defined = " ".join(term for term, _ in METRIC_DEFINITIONS)
    assert all(col.replace("Otsu ", "") in defined for col in METRIC_COLUMNS if col not in ("region", "chips"))
    assert any(term.startswith("Otsu") and "needs no training" in text for term, text in METRIC_DEFINITIONS)


def test_both_reports_define_the_scores_and_name_the_otsu_variant(result, tmp_path):
    html = write_html_report(tmp_path / "r.html", title="t", metrics=result).read_text()
    index = write_accuracy_report(tmp_path / "acc", {"synthetic": result}).read_text()
    for page in (html, index):
        assert "<dt>Otsu IoU, F1</dt>" in page and "<dt>prec.</dt>" in page
        assert "Otsu here: Otsu on VH in dB, one threshold per chip.</p>" in page


def test_flood_labelled_scores_are_defined_as_flood(result, tmp_path):
    """OMBRIA's masks mark the flood: the reports' definitions said "true water" above flood scores."""
    flood = {**result, "label": "flood"}
    html = write_html_report(tmp_path / "r.html", title="t", metrics=flood).read_text()
    index = write_accuracy_report(tmp_path / "acc", {"ombria": flood}).read_text()
    for page in (html, index):
        assert "predicted and true flood" in page and "predicted and true water" not in page
        assert "dark being water" in page  # Otsu's dark group is water whatever the masks mark
