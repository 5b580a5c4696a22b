"""benchmarks/generalisation.py: the nested choice among recipes never looks at the held-out event's score,
and the scene-recipe check refuses a recipe that trains on another event."""
from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen():
    return load_benchmark("generalisation")


def _rows(scores: dict[str, float], seeds=(42, 1)) -> list[dict]:
    return [{"seed": s, "events": {e: {"water_iou": v, "recall": 0.5} for e, v in scores.items()}} for s in seeds]


def test_nested_choice_picks_each_event_on_the_other_events(gen):
    # Held out X: Y and Z decide (A 0.2, B 0.5) -> B, although A scores far better on X itself.
    # Held out Y: X and Z decide (A 0.55, B 0.4) -> A; the same for Z.
    rows = {"A": _rows({"X": 0.9, "Y": 0.2, "Z": 0.2}), "B": _rows({"X": 0.3, "Y": 0.5, "Z": 0.5})}
    chosen, choice = gen.nested_choice(rows)
    assert choice == {"X": "B", "Y": "A", "Z": "A"}
    assert [r["events"]["X"]["water_iou"] for r in chosen] == [0.3, 0.3]
    assert [r["events"]["Y"]["water_iou"] for r in chosen] == [0.2, 0.2]


def test_nested_choice_shows_dry_events_from_the_overall_choice(gen):
    rows = {"A": _rows({"X": 0.9, "Y": 0.8}), "B": _rows({"X": 0.1, "Y": 0.1})}
    for r in rows["A"] + rows["B"]:
        r["events"]["Dry"] = {"water_iou": 0.0, "recall": None, "false_water_share": 0.01}
    chosen, choice = gen.nested_choice(rows)
    assert choice["Dry"] == "A"
    assert all("Dry" in r["events"] for r in chosen)


def test_a_scene_recipe_must_train_on_north_alabama_alone(gen, tmp_path):
    recipe = (ROOT / "examples" / "all_events.yaml").read_text()
    path = tmp_path / "all.yaml"
    path.write_text(recipe.replace("../../shared", str(ROOT.parent / "shared")))
    with pytest.raises(SystemExit, match="North Alabama"):
        gen.run_scene_recipe(path, 42, tmp_path, None)


def test_nested_choice_refuses_what_it_cannot_choose_on(gen):
    with pytest.raises(SystemExit, match="needs two events"):
        gen.nested_choice({"A": _rows({"X": 0.9}), "B": _rows({"X": 0.1})})
    with pytest.raises(SystemExit, match="share no seed"):
        gen.nested_choice({"A": _rows({"X": 0.9, "Y": 0.1}, seeds=(1,)), "B": _rows({"X": 0.1, "Y": 0.2}, seeds=(2,))})


def test_a_scene_recipe_may_not_reach_a_scored_event_through_a_parent_folder(gen, tmp_path):
    recipe = (ROOT / "examples" / "etci_northal_slim.yaml").read_text()
    path = tmp_path / "parent.yaml"
    path.write_text(recipe.replace("../../shared/data/etci2021/northal_20190302t234651",
                                   str(ROOT.parent / "shared" / "data")))
    with pytest.raises(SystemExit, match="North Alabama"):
        gen.run_scene_recipe(path, 42, tmp_path, None)


def test_folds_drop_the_held_out_event_and_keep_each_recipes_8bit_map(gen):
    from floodwatch.config import load_spec

    fixed = load_spec(ROOT / "examples" / "all_events_fixed.yaml")
    scene = load_spec(ROOT / "examples" / "all_events.yaml")
    assert gen.uses_fixed_map(fixed) and not gen.uses_fixed_map(scene)
    assert not gen.uses_fixed_map(load_spec(ROOT / "examples" / "sen1floods11.yaml"))  # no ETCI source
    reference = {"VV": (-14.0, -9.0), "VH": (-25.0, -15.0)}
    spec = gen.fold_spec(fixed, "Bangladesh", reference)
    paths = [Path(s.path).resolve() for s in spec.dataset_config.sources]
    assert gen.ETCI["Bangladesh"].resolve() not in paths and gen.ETCI["NorthAL"].resolve() in paths
    assert all("reference" not in s.options for s in spec.dataset_config.sources)  # the fixed map takes none
    spec = gen.fold_spec(fixed, "S1-B", reference)
    s1 = [s for s in spec.dataset_config.sources if Path(s.path).resolve() == gen.S1.resolve()][0]
    assert {"India", "Somalia"} <= set(s1.exclude_regions) and len(spec.dataset_config.sources) == 3
    spec = gen.fold_spec(scene, "NorthAL", reference)
    assert [s.options["reference"] for s in spec.dataset_config.sources if s.format == "etci2021"] == [reference]


def test_a_synthetic_source_stays_in_every_fold_as_it_is(gen):
    from floodwatch.config import load_spec

    recipe = load_spec(ROOT / "examples" / "all_events_synth.yaml")
    synth = [s for s in recipe.dataset_config.sources if "synth_phenomena" in s.path]
    assert len(synth) == 1  # it holds no real event, so no fold may drop or narrow it
    for fold in gen.FOLDS:
        spec = gen.fold_spec(recipe, fold, {"VV": (-14.0, -9.0), "VH": (-25.0, -15.0)})
        kept = [s for s in spec.dataset_config.sources if "synth_phenomena" in s.path]
        assert [(s.path, s.exclude_regions, s.options) for s in kept] == \
            [(synth[0].path, synth[0].exclude_regions, synth[0].options)]


def test_rows_scored_on_different_events_are_compared_on_the_shared_ones(gen):
    folds = _rows({"India": 0.8, "Spain": 0.4, "NorthAL": 0.1})  # a fold recipe also scores North Alabama
    scene = _rows({"India": 0.6, "Spain": 0.5})
    for rows in (folds, scene):
        for row in rows:
            for m in row["events"].values():
                m.update(otsu_water_iou=0.2, precision=0.5)
    text = gen.table({"folds": folds, "scene": scene})
    shared = [line for line in text.splitlines() if "every row scored" in line]
    assert len(shared) == 2 and "(India, Spain)" in shared[0]
    assert "| folds | 0.600 (0.600–0.600) |" in shared[0] and "| scene | 0.550 (0.550–0.550) |" in shared[1]
    assert "every row scored" not in gen.table({"scene": scene})  # one set of events: no extra row


def test_a_missing_or_repeated_recipe_in_the_list_is_named(gen, tmp_path, capsys):
    assert gen.main(["--recipe", f"{ROOT}/examples/all_events_fixed.yaml,{tmp_path}/nope.yaml",
                     "--work", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"--recipe: {tmp_path}/nope.yaml: file not found"
    (tmp_path / "all_events_fixed.yaml").write_text("{}")
    assert gen.main(["--recipe", f"{ROOT}/examples/all_events_fixed.yaml,{tmp_path}/all_events_fixed.yaml",
                     "--work", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "--recipe: two recipes named 'all_events_fixed'"


def test_a_fold_variant_scores_that_folds_model_with_its_keywords_and_is_kept(gen, tmp_path, monkeypatch):
    import json

    from floodwatch.config import load_spec

    (tmp_path / "S1-B_s42.json").write_text(json.dumps({"reference_modes": {"VV": [-20.0, -8.0]}}))
    calls = []
    monkeypatch.setattr(gen, "held_out", lambda fold, ref, fixed=False: calls.append((fold, ref, fixed)) or ["chip"])
    monkeypatch.setattr(gen, "score", lambda ckpt, samples, **kw: calls.append((ckpt, samples, kw))
                        or {"India": {"water_iou": 0.5, "otsu_water_iou": 0.4}})
    recipe = load_spec(ROOT / "examples" / "all_events_context.yaml")  # reads ETCI scenes with the fixed map
    row = gen.run_fold_variant(recipe, "S1-B", 42, tmp_path, "tta")
    assert calls == [("S1-B", {"VV": [-20.0, -8.0]}, True),
                     (tmp_path / "runs" / "S1-B_s42" / "best.pt", ["chip"], {"tta": True})]
    assert row == {"fold": "S1-B", "seed": 42, "variant": "tta",
                   "events": {"India": {"water_iou": 0.5, "otsu_water_iou": 0.4}}}
    calls.clear()
    assert gen.run_fold_variant(recipe, "S1-B", 42, tmp_path, "tta") == row and not calls  # kept, not rescored


@pytest.mark.parametrize("variant, chain", [
    ("tta", ["TTAPredictor", "TorchPredictor"]),
    ("refine", ["RefinePredictor", "TorchPredictor"]),
    ("tta_refine", ["RefinePredictor", "TTAPredictor", "TorchPredictor"]),
    ("d4", ["TTAPredictor", "TorchPredictor"]),
])
def test_each_inference_variant_builds_what_map_would(gen, tiny_checkpoint, variant, chain):
    from floodwatch.inference.predictor import load_predictor

    predictor, names = load_predictor(tiny_checkpoint, **gen.VARIANTS[variant]), []
    while predictor is not None:
        names.append(type(predictor).__name__)
        predictor = getattr(predictor, "base", None)
    assert names == chain
    if variant == "d4":
        assert len(load_predictor(tiny_checkpoint, **gen.VARIANTS["d4"]).transforms) == 8


def test_a_semi_fold_leaves_its_events_out_of_the_unlabelled_chips_and_starts_from_round_0(gen, tmp_path,
                                                                                           monkeypatch):
    import floodwatch.training as training

    trained, scored = [], []

    class Result:
        best_checkpoint = tmp_path / "best.pt"

    def fake_train(spec, results, name, seed, pretrained=None, progress=False, overwrite=False):
        trained.append((spec, name, seed, pretrained))
        return Result()

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(gen, "held_out", lambda fold, ref, fixed=False: [(fold, fixed)])
    monkeypatch.setattr(gen, "score", lambda ckpt, samples: scored.append(samples[0]) or
                        {samples[0][0]: {"water_iou": 0.5, "otsu_water_iou": 0.4}})
    recipe = ROOT / "examples" / "etci_semi.yaml"
    with pytest.raises(SystemExit, match="round 0's model is missing"):
        gen.run_semi_fold(recipe, "S1-A", 42, tmp_path, None)
    (tmp_path / "runs" / "round0_s42").mkdir(parents=True)
    (tmp_path / "runs" / "round0_s42" / "best.pt").write_bytes(b"")
    row = gen.run_semi_fold(recipe, "S1-A", 42, tmp_path, None)
    ((spec, name, seed, pretrained),) = trained
    (unlabelled,) = spec.semi_supervised.unlabelled
    assert unlabelled.exclude_regions == sorted(gen.FOLDS["S1-A"])  # Ghana, Mekong, Paraguay: no pseudo-labels
    assert (name, seed, pretrained) == ("S1-A_s42", 42, tmp_path / "runs" / "round0_s42" / "best.pt")
    assert scored == [("S1-A", True), ("Bangladesh", True)]  # both read with the fixed 8-bit map it trains on
    assert set(row["events"]) == {"S1-A", "Bangladesh"}
    assert gen.run_semi_fold(recipe, "S1-A", 42, tmp_path, None) == row and len(trained) == 1  # kept

    gen.run_semi_fold(recipe, "S1-B", 42, tmp_path, None)
    assert trained[-1][0].semi_supervised.unlabelled[0].exclude_regions == ["India", "Somalia"]
    assert scored[-1] == ("S1-B", True)  # Bangladesh only once, by the first fold


def test_the_selftrain_variant_scores_with_the_settings_declared(gen, tiny_checkpoint, monkeypatch):
    """docs/benchmarks.md (sixteenth session) declared these settings before any score: the variant and `map
    --self-train` (SelfTraining's defaults) must both still be them."""
    from floodwatch.inference.selftrain import SelfTraining

    seen = []
    monkeypatch.setattr(gen, "_score", lambda predictor, samples, self_train=None: seen.append(self_train) or {})
    gen.score(tiny_checkpoint, ["chip"], **gen.VARIANTS["selftrain"])
    assert seen == [SelfTraining()]
    assert SelfTraining() == SelfTraining(steps=50, batch=8, crop=256, learning_rate=3e-4, confidence=0.9,
                                          max_chips=64, seed=0)
