import pytest
from PIL import Image
from rich.console import Console

from floodwatch.errors import DataError
from floodwatch.evaluation.evaluate import evaluate, to_json_safe
from floodwatch.evaluation.report import (learning_curve_png, metrics_rows, print_metrics_table,
                                          write_html_report)
from floodwatch.data.synthetic import synth_chips


@pytest.fixture(scope="module")
def result(tmp_path_factory, oracle):
    chips = synth_chips(6, size=32, seed=2)
    out = tmp_path_factory.mktemp("r") / "pred"
    return evaluate(oracle(chips), chips, progress=False, save_predictions=out), out


def test_table_rows_and_console_output(result):
    r, _ = result
    rows = metrics_rows(r)
    assert rows[0][0] == "all" and rows[0][1] == "6" and rows[0][2] == "1.000"
    assert [row[0] for row in rows[1:]] == sorted(r["regions"])
    console = Console(record=True, width=140)
    print_metrics_table(r, console)
    text = console.export_text()
    assert "Otsu IoU" in text and "SynthC" in text and f"{r['otsu']['water_iou']:.3f}" in text


def test_skipped_chips_are_noted_only_when_there_are_some(result):
    r, _ = result
    for counts, expected in (({}, None), ({"empty_chips": 2}, "skipped: 2 empty (all no data or ignore)"),
                             ({"empty_chips": 2, "unlabelled_chips": 1}, "2 empty (all no data or ignore), 1 unlabelled")):
        console = Console(record=True, width=300)
        print_metrics_table({**r, "empty_chips": 0, "unlabelled_chips": 0, **counts}, console)
        text = console.export_text()
        assert ("skipped" not in text) if expected is None else (expected in text)


def test_json_safe_turns_nan_into_null():
    assert to_json_safe({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}


def test_learning_curve_and_html_report(result, tmp_path):
    r, pred_dir = result
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,train_loss,val_loss,water_iou,lr\n1,0.9,1.0,0.3,0.001\n2,0.5,0.7,0.6,0.0005\n")
    png = learning_curve_png(csv, tmp_path / "curve.png")
    with Image.open(png) as im:
        assert im.size[0] > 400 and im.size[1] > 200
    overlays = sorted(pred_dir.glob("*.png"))[:2]
    html = write_html_report(tmp_path / "report.html", title="t <x>", metrics=r, learning_curve=png,
                             overlays=overlays, sections=[("Extra", "<p>later stage</p>")]).read_text()
    assert html.count("data:image/png;base64") == 3
    assert "t &lt;x&gt;" in html and "<p>later stage</p>" in html and "SynthA" in html
    assert "missed water" in html  # the legend


def test_learning_curve_bad_csv(tmp_path):
    with pytest.raises(DataError, match="metrics CSV not found"):
        learning_curve_png(tmp_path / "none.csv", tmp_path / "c.png")
    (tmp_path / "m.csv").write_text("epoch,note\n1,abc\n")
    with pytest.raises(DataError, match="no loss or score columns"):
        learning_curve_png(tmp_path / "m.csv", tmp_path / "c.png")
