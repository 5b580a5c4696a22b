"""How well does a recipe map floods it has never seen? Leave-one-event-out over every labelled event.

    python benchmarks/generalisation.py [--recipe examples/all_events.yaml[,b.yaml]] [--seeds 42,1,2]
           [--folds S1-A,NorthAL] [--baseline] [--quick] [--work benchmarks/.cache/loeo] [--out loeo.md]
    python benchmarks/generalisation.py --scene-recipes examples/etci_northal_slim.yaml,examples/etci_northal_contrast.yaml

Events (../shared/data): the Sen1Floods11 events (Ghana, India, Mekong, Paraguay, Somalia, Spain, Sri-Lanka)
in three folds, ETCI 2021 North Alabama, ETCI 2021 Bangladesh. OMBRIA is not scored: its pictures are one
band (VV) and the recipe's model takes VV and VH. Paraguay's only chip holds no data (all NaN): it is held
out with its fold and scores nothing.

For each fold everything is fitted on the other events only:
- the recipe's `dataset_config.sources` lose the held-out event (an ETCI scene source is dropped, a
  Sen1Floods11 event goes into the source's `exclude_regions`);
- the dB modes that ETCI scenes are put on (`harmonise.REFERENCE_MODES`) are refitted on the training
  folds' Sen1Floods11 chips (their images; no labels);
- weights, normalisation (fitted on the training chips by `train`), and the model chosen by validation
  tiles of the training events' ETCI scenes.
The held-out scene's own pixels are used only by the step a user's inference runs on it too: fitting
that ETCI scene's 8-bit -> dB map from its own histogram (one extra pass over its pictures, label-free).

Printed per event: water IoU (pixel-aggregated), precision, recall, and per-chip Otsu (VH, one threshold per
chip) on the same pixels; then the mean over events and, over seeds, the spread (min-max) of every row.
`--baseline` is `--beside examples/etci_northal_slim.yaml` (a default model's recipe of the sixth session: North
Alabama only, its fixed 8-bit map); `--baseline-only` is `--scene-recipes` with that recipe alone.
`--scene-recipes a.yaml,b.yaml` trains each such North-Alabama-only recipe for every seed, and with more than
one adds a "nested choice" row: for each held-out event the recipe with the best mean over the *other* events
supplies its score, so choosing among recipes never looks at the event it is scored on.
`--ensemble` also scores each --recipe fold's seed models together (their mean probability: one row, one
"seed"), which is what a user's `-m a.pt -m b.pt -m c.pt` would get on an unseen event, at 3x the inference.
`--variants adapt,downsample2,tta,refine,tta_refine,d4,d4_refine,selftrain` also scores each recipe's models (the --recipe folds'
or the scene recipes') with an inference step: `adapt` re-estimates BatchNorm statistics on each held-out
event's own chips (inference/adapt.py; labels unused), `downsample2` predicts on a 2x coarser grid (`map
--downsample 2`), `tta` averages four views (`map --tta`), `refine` runs the guided filter (`map --refine
guided`), `tta_refine` both, `d4` averages the eight flips and rotations (`map --tta-transforms d4`),
`d4_refine` those and the guided filter, `selftrain` fine-tunes the model on each held-out event's own confident
predictions before predicting it (`map --self-train`, inference/selftrain.py; labels unused).
Results of finished folds are kept in --work and reused, so a run can be stopped and resumed.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
S1 = SHARED / "sen1floods11"
ETCI = {"NorthAL": SHARED / "etci2021" / "northal_20190302t234651",
        "Bangladesh": SHARED / "etci2021" / "bangladesh_20170314t115609"}
BASELINE = ROOT / "examples" / "etci_northal_slim.yaml"
#: fold -> Sen1Floods11 events it holds out (or an ETCI scene key)
FOLDS = {"S1-A": ["Ghana", "Mekong", "Paraguay"], "S1-B": ["India", "Somalia"], "S1-C": ["Spain", "Sri-Lanka"],
         "NorthAL": [], "Bangladesh": []}


def reference_modes(chips) -> dict[str, tuple[float, float]]:
    """The dark/bright dB mode medians of Sen1Floods11 chips' pooled valid pixels, per band (no labels)."""
    from floodwatch.data.harmonise import mode_medians

    return {band: mode_medians(np.concatenate([c.image[i][c.valid] for c in chips]))
            for i, band in enumerate(("VV", "VH"))}


def is_etci(source) -> bool:
    return bool(source.format) and source.format.lower().startswith("etci")


def fold_spec(recipe, fold: str, reference: dict) -> object:
    """The recipe with the fold's event removed and ETCI sources put on the fold's reference modes."""
    spec = copy.deepcopy(recipe)
    kept = []
    for source in spec.dataset_config.sources:
        path = Path(source.path).resolve()
        if fold in ETCI and path == ETCI[fold].resolve():
            continue
        if path == S1.resolve():
            source.exclude_regions = sorted(set(source.exclude_regions) | set(FOLDS[fold]))
        if is_etci(source) and source.options.get("harmonise") == "scene":
            source.options = {**source.options, "reference": reference}
        kept.append(source)
    spec.dataset_config.sources = kept
    return spec


def uses_fixed_map(recipe) -> bool:
    """Whether the recipe reads its ETCI scenes with the one fixed 8-bit map (the reader's default), so that a
    held-out ETCI scene is read that way too, not with a map fitted on its own pixels. A recipe without ETCI
    sources keeps the scene map for held-out ETCI scenes, as before this rule."""
    etci = [s for s in recipe.dataset_config.sources or [] if is_etci(s)]
    return bool(etci) and all(s.options.get("harmonise", "fixed") != "scene" for s in etci)


def held_out(fold: str, reference: dict, fixed: bool = False) -> list:
    from floodwatch.data import open_dataset

    if fold in ETCI:
        opts = {"harmonise": "fixed"} if fixed else {"harmonise": "scene", "reference": reference}
        return list(open_dataset(ETCI[fold], **opts))
    return [s for s in open_dataset(S1) if s.region in FOLDS[fold]]


def score(checkpoint: Path, samples: list, adapt: bool = False, downsample: int = 1, self_train: bool = False,
          **options) -> dict[str, dict]:
    """{event: {water_iou, precision, recall, otsu_water_iou, pixels}} on the held-out samples; `adapt`
    re-estimates BatchNorm statistics on each event's own chips first (inference/adapt.py), `self_train`
    fine-tunes on each event's own confident predictions first (inference/selftrain.py), `downsample`
    predicts on a that-many-times coarser grid; `options` go to load_predictor (tta, refine)."""
    from floodwatch.inference.predictor import load_predictor

    if self_train:  # each event fine-tuned on alone, the weights put back before the next (evaluate's self_train)
        from floodwatch.inference.selftrain import SelfTraining

        return _score(load_predictor(checkpoint, downsample=downsample, **options), samples, SelfTraining())
    if not adapt:
        return _score(load_predictor(checkpoint, downsample=downsample, **options), samples)
    from floodwatch.data.preprocess import network_input
    from floodwatch.inference.adapt import adapt_batchnorm, mostly_valid

    out = {}
    for region in dict.fromkeys(s.region for s in samples):  # each event alone, in the order they come
        own = [s for s in samples if s.region == region]
        if all(s.mask is None or s.is_empty for s in own):
            continue  # nothing to score (Paraguay's only chip holds no data)
        predictor = load_predictor(checkpoint, downsample=downsample, fold_batch_norm=False, **options)  # BN kept
        inputs = [network_input(s, predictor.preprocessing) for s in own if not s.is_empty and mostly_valid(s.valid)]
        if inputs:  # else the training statistics stay
            model = predictor
            while not hasattr(model, "model"):  # under the downsampling/TTA/refinement wrappers, if any
                model = model.base
            model = model.model
            adapt_batchnorm(model, [np.stack(inputs[i:i + 8]) for i in range(0, len(inputs), 8)])
        out.update(_score(predictor, own))
    return out


def _score(predictor, samples: list, self_train=None) -> dict[str, dict]:
    from floodwatch.evaluation.evaluate import evaluate
    from floodwatch.evaluation.otsu import OtsuBaseline

    r = evaluate(predictor, samples, otsu=OtsuBaseline(band="VH", scope="chip"), progress=False, self_train=self_train)
    for region, info in r.get("self_training", {}).items():
        print(f"  self-training on {region}: {info['chips']} chips, "
              f"{info['labelled_pixels'] / max(1, info['pixels']):.0%} of pixels pseudo-labelled "
              f"({info['pseudo_water_pixels'] / max(1, info['labelled_pixels']):.1%} water), "
              f"{info['seconds']:.0f} s", flush=True)
    out = {}
    for region, m in r["regions"].items():
        event = "NorthAL" if region.startswith("northal") else "Bangladesh" if region.startswith("bangladesh") \
            else region
        (tn, fp), (fn, tp) = m["confusion"]
        (otn, ofp), _ = m["otsu"]["confusion"]
        out[event] = {"water_iou": m["water_iou"], "precision": m["precision"], "recall": m["recall"],
                      "otsu_water_iou": m["otsu"]["water_iou"], "pixels": m["pixels"], "water_pixels": fn + tp,
                      "false_water_share": fp / max(1, tn + fp), "otsu_false_water_share": ofp / max(1, otn + ofp)}
    return out


def run_fold(recipe, fold: str, seed: int, work: Path, epochs: int | None, s1_chips: list) -> dict:
    from floodwatch.training import train

    done = work / f"{fold}_s{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    train_chips = [c for c in s1_chips if c.region not in FOLDS[fold]]
    reference = reference_modes(train_chips)
    spec = fold_spec(recipe, fold, reference)
    if epochs:
        spec.training_config.epochs = epochs
    start = time.perf_counter()
    result = train(spec, work / "runs", name=f"{fold}_s{seed}", seed=seed, progress=False,
                   overwrite=True)  # a fold killed half-way trains again from scratch (deterministic per seed)
    seconds = time.perf_counter() - start
    events = score(result.best_checkpoint, held_out(fold, reference, fixed=uses_fixed_map(recipe)))
    row = {"fold": fold, "seed": seed, "train_seconds": round(seconds, 1), "reference_modes": reference,
           "events": events}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


def run_fold_ensemble(recipe, fold: str, seeds: list[int], work: Path) -> dict:
    """The fold's seed models together (their mean water probability, `load_predictor` with several models),
    scored on the held-out event like each seed's. The folds must be trained (run_fold) first."""
    from floodwatch.inference.predictor import load_predictor

    done = work / f"{fold}_ensemble_{'_'.join(map(str, seeds))}.json"
    if done.is_file():
        return json.loads(done.read_text())
    reference = json.loads((work / f"{fold}_s{seeds[0]}.json").read_text())["reference_modes"]
    models = [work / "runs" / f"{fold}_s{seed}" / "best.pt" for seed in seeds]
    events = _score(load_predictor(models), held_out(fold, reference, fixed=uses_fixed_map(recipe)))
    row = {"fold": fold, "seed": 0, "ensemble_of": seeds, "events": events}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


def score_unseen(checkpoint: Path, **variant) -> dict[str, dict]:
    """A North-Alabama model scored on every other event, each read as it was trained (the fixed 8-bit map)."""
    events = {}
    for fold in FOLDS:
        if fold != "NorthAL":
            events.update(score(checkpoint, held_out(fold, {}, fixed=True), **variant))
    return events


def run_scene_recipe(path: Path, seed: int, work: Path, epochs: int | None) -> dict:
    """A recipe trained on ETCI North Alabama (e.g. examples/etci_northal_slim.yaml), with its fixed 8-bit map,
    and optionally on data no event is scored on (synthetic chips), scored on every other event: it never sees
    any of them, so one training per seed serves every fold."""
    from floodwatch.config import load_spec
    from floodwatch.training import train

    done = work / f"scene_s{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    work.mkdir(parents=True, exist_ok=True)
    spec = load_spec(path)
    dc = spec.dataset_config
    if not dc.sources:
        raise SystemExit(f"{path}: give its data as dataset_config.sources (North Alabama, and data no event is "
                         f"scored on), so the events it trains on can be checked")
    scored = [S1.resolve(), ETCI["Bangladesh"].resolve()]  # labelled events it must never train on

    def overlaps(p: Path) -> bool:  # the same folder, one inside the other either way
        return any(p == r or r in p.parents or p in r.parents for r in scored)

    others = [s.path for s in dc.sources if overlaps(Path(s.path).resolve())]
    if others:
        raise SystemExit(f"{path}: trains on {others[0]} too; a scene recipe trains on North Alabama (and data "
                         f"that no event is scored on, such as synthetic chips) alone")
    missing = [s.path for s in dc.sources if not Path(s.path).exists()]
    if missing:
        raise SystemExit(f"{path}: source {missing[0]} not found (see the recipe's header for how to write it)")
    if epochs:
        spec.training_config.epochs = epochs
    result = train(spec, work / "runs", name=f"scene_s{seed}", seed=seed, progress=False,
                   overwrite=True)  # a fold killed half-way trains again from scratch (deterministic per seed)
    row = {"fold": "scene", "seed": seed, "recipe": path.name, "events": score_unseen(result.best_checkpoint)}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


#: the semi-supervised recipe's folds: each Sen1Floods11 fold's events are left out of its unlabelled chips;
#: Bangladesh (in no unlabelled set) is scored by the first fold's model, North Alabama (labelled) by none
SEMI_FOLDS = {"S1-A": ["Bangladesh"], "S1-B": [], "S1-C": []}


def run_semi_round0(path: Path, seed: int, work: Path, epochs: int | None) -> dict:
    """Round 0 of a semi-supervised recipe (its supervised North Alabama model, the spec without its
    semi_supervised section), trained once per seed and scored on every other event."""
    from floodwatch.config import load_spec
    from floodwatch.training import train

    done = work / f"round0_s{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    work.mkdir(parents=True, exist_ok=True)
    spec = load_spec(path)
    if spec.dataset_config.sources or Path(spec.dataset_config.data_root or "").resolve() != ETCI["NorthAL"].resolve():
        raise SystemExit(f"{path}: --semi-recipe: its labelled data must be North Alabama alone (data_root), so "
                         f"round 0 sees no scored event")
    spec.semi_supervised = None
    if epochs:
        spec.training_config.epochs = epochs
    result = train(spec, work / "runs", name=f"round0_s{seed}", seed=seed, progress=False,
                   overwrite=True)  # a fold killed half-way trains again from scratch (deterministic per seed)
    row = {"fold": "scene", "seed": seed, "recipe": path.name, "round": 0,
           "events": score_unseen(result.best_checkpoint)}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


def run_semi_fold(path: Path, fold: str, seed: int, work: Path, epochs: int | None) -> dict:
    """A semi-supervised recipe (labelled North Alabama, unlabelled Sen1Floods11 chips, e.g.
    examples/etci_semi.yaml) with the fold's events left out of its unlabelled chips: its rounds start from
    round 0 (run_semi_round0's model, the one the recipe itself would train first), and the last round's best
    model is scored on the fold's events (and SEMI_FOLDS' others)."""
    from floodwatch.config import load_spec
    from floodwatch.training import train

    done = work / f"{fold}_s{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    round0 = work / "runs" / f"round0_s{seed}" / "best.pt"
    if not round0.is_file():
        raise SystemExit(f"{round0}: round 0's model is missing; remove {work / f'round0_s{seed}.json'} to train it again")
    spec = load_spec(path)
    if spec.semi_supervised is None:
        raise SystemExit(f"{path}: --semi-recipe needs a semi_supervised section")
    for source in spec.semi_supervised.unlabelled:
        p = Path(source.path).resolve()
        if p == S1.resolve():
            source.exclude_regions = sorted(set(source.exclude_regions) | set(FOLDS[fold]))
        elif any(p == e.resolve() or e.resolve() in p.parents for e in ETCI.values()) or S1.resolve() in p.parents:
            raise SystemExit(f"{path}: unlabelled {source.path}: only Sen1Floods11's folder can leave events out")
    if epochs:
        spec.semi_supervised.epochs_per_round = epochs
    start = time.perf_counter()
    result = train(spec, work / "runs", name=f"{fold}_s{seed}", seed=seed, pretrained=round0, progress=False,
                   overwrite=True)
    seconds = time.perf_counter() - start
    events = score(result.best_checkpoint, held_out(fold, {}, fixed=True))
    for other in SEMI_FOLDS[fold]:
        events.update(score(result.best_checkpoint, held_out(other, {}, fixed=True)))
    row = {"fold": fold, "seed": seed, "recipe": path.name, "train_seconds": round(seconds, 1), "events": events}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


#: inference variants a recipe's models can also be scored with: name -> score() keywords
VARIANTS = {"adapt": {"adapt": True},   # BatchNorm statistics re-estimated on each held-out event's own chips
            "downsample2": {"downsample": 2},  # predicted on a 2x coarser grid (inference/downsample.py)
            "tta": {"tta": True},       # `map --tta`: identity, hflip, vflip, rot90 averaged (4x the model's time)
            "refine": {"refine": "guided"},  # `map --refine guided`: guided filter, r=1, eps=0.1 (inference/refine.py)
            "tta_refine": {"tta": True, "refine": "guided"},  # `map --tta --refine guided`: both, refined last
            "d4": {"tta": "d4"},        # `map --tta-transforms d4`: the eight flips and rotations (8x)
            "d4_refine": {"tta": "d4", "refine": "guided"},  # `map --tta-transforms d4 --refine guided`
            "selftrain": {"self_train": True}}  # `map --self-train`: fine-tuned on the event's confident pixels


def run_fold_variant(recipe, fold: str, seed: int, work: Path, variant: str) -> dict:
    """A --recipe fold's model of `seed` (trained first by run_fold) scored with an inference variant."""
    done = work / f"{fold}_s{seed}_{variant}.json"
    if done.is_file():
        return json.loads(done.read_text())
    reference = json.loads((work / f"{fold}_s{seed}.json").read_text())["reference_modes"]
    events = score(work / "runs" / f"{fold}_s{seed}" / "best.pt",
                   held_out(fold, reference, fixed=uses_fixed_map(recipe)), **VARIANTS[variant])
    row = {"fold": fold, "seed": seed, "variant": variant, "events": events}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


def scene_recipe_variant(path: Path, seed: int, work: Path, epochs: int | None, variant: str) -> dict:
    """The scene recipe's model of `seed` (trained if it is not yet), scored with an inference variant."""
    done = work / f"scene_s{seed}_{variant}.json"
    if done.is_file():
        return json.loads(done.read_text())
    run_scene_recipe(path, seed, work, epochs)
    events = score_unseen(work / "runs" / f"scene_s{seed}" / "best.pt", **VARIANTS[variant])
    row = {"fold": "scene", "seed": seed, "recipe": path.name, "variant": variant, "events": events}
    done.write_text(json.dumps(to_json_safe(row), indent=1, allow_nan=False))
    return row


def events_by_seed(rows_by_recipe: dict[str, list[dict]]) -> dict[str, dict[int, dict]]:
    """{recipe: {seed: {event: scores}}}: a recipe's fold rows of one seed merged."""
    out: dict[str, dict[int, dict]] = {}
    for name, rows in rows_by_recipe.items():
        for row in rows:
            out.setdefault(name, {}).setdefault(row["seed"], {}).update(row["events"])
    return out


def nested_choice(rows_by_recipe: dict[str, list[dict]]) -> tuple[list[dict], dict[str, str]]:
    """Choosing among recipes without looking at the held-out event: for each event, the recipe with the best
    mean water IoU over the *other* events (seed mean) supplies that event's rows. Returns (rows, {event:
    recipe}). Only events every recipe scored take part; events without labelled water are shown from the
    recipe chosen over all events."""
    by_recipe = events_by_seed(rows_by_recipe)
    seeds = sorted(set.intersection(*(set(b) for b in by_recipe.values())))
    if not seeds:
        raise SystemExit("nested choice: the recipes share no seed")
    events = sorted(set.intersection(*(set(b[s]) for b in by_recipe.values() for s in seeds)))
    wet = [e for e in events if all(_has_water(b[s][e]) for b in by_recipe.values() for s in seeds)]
    if len(wet) < 2:
        raise SystemExit(f"nested choice: needs two events with labelled water that every recipe scored in the "
                         f"same seeds; found {len(wet)}")

    def mean_iou(name: str, over: list[str]) -> float:
        values = [_clean(by_recipe[name][s][e]["water_iou"]) for s in seeds for e in over]
        values = [v for v in values if not math.isnan(v)]
        return statistics.fmean(values) if values else float("-inf")

    overall = max(by_recipe, key=lambda n: mean_iou(n, wet))
    choice = {e: (max(by_recipe, key=lambda n: mean_iou(n, [o for o in wet if o != e])) if e in wet else overall)
              for e in events}
    rows = [{"fold": "nested", "seed": s, "events": {e: by_recipe[choice[e]][s][e] for e in events}} for s in seeds]
    return rows, choice


def to_json_safe(obj):
    from floodwatch.evaluation.evaluate import to_json_safe as safe  # nan -> None

    return safe(obj)


def _has_water(row: dict | None) -> bool:
    # recall is undefined (nan, or null once written as JSON) without labelled water
    return row is not None and not math.isnan(_clean(row.get("recall")))


def _clean(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def table(rows_by_recipe: dict[str, list[dict]]) -> str:
    """Markdown: per event and the event mean, per recipe: seed mean (min-max) of IoU, P, R; Otsu."""
    events = ["Ghana", "India", "Mekong", "Somalia", "Spain", "Sri-Lanka", "NorthAL", "Bangladesh"]
    lines = ["| event | recipe | water IoU | precision | recall | per-chip Otsu IoU | seeds |",
             "|---|---|---|---|---|---|---|"]

    def cell(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "–"
        mean = statistics.fmean(values)
        return f"{mean:.3f}" + (f" ({min(values):.3f}–{max(values):.3f})" if len(values) > 1 else "")

    seeded = events_by_seed(rows_by_recipe)
    wet = {name: {e for ev in b.values() for e in events if _has_water(ev.get(e))} for name, b in seeded.items()}
    shared = [e for e in events if all(e in w for w in wet.values())]
    means = ["mean over events"] + (["mean over shared events"] if len(set(map(frozenset, wet.values()))) > 1 else [])
    for event in [*events, *means]:
        for name, by_seed in seeded.items():
            if event == "mean over shared events":  # rows scored on different events: compare on the common ones
                def shared_mean(ev: dict, key: str) -> float:  # nan while a seed's fold is still missing
                    return float(np.mean([_clean(ev[e][key]) if e in ev else math.nan for e in shared]))

                per_seed = [shared_mean(ev, "water_iou") for ev in by_seed.values()]
                otsu = [shared_mean(ev, "otsu_water_iou") for ev in by_seed.values()]
                done = sum(not math.isnan(v) for v in per_seed)  # seeds with every shared event scored
                lines.append(f"| **mean over the {len(shared)} events every row scored ({', '.join(shared)})** | "
                             f"{name} | {cell(per_seed)} | | | {cell(otsu)} | {done} |")
                continue
            if event == "mean over events":
                per_seed = {seed: [_clean(ev[e]["water_iou"]) for e in events if _has_water(ev.get(e))]
                            for seed, ev in by_seed.items()}
                otsu = {seed: [_clean(ev[e]["otsu_water_iou"]) for e in events if _has_water(ev.get(e))]
                        for seed, ev in by_seed.items()}
                n = {len(v) for v in per_seed.values()}
                lines.append(f"| **mean over {'/'.join(map(str, sorted(n)))} events** | {name} | "
                             f"{cell([float(np.nanmean(v)) for v in per_seed.values()])} | | | "
                             f"{cell([float(np.nanmean(v)) for v in otsu.values()])} | {len(by_seed)} |")
                continue
            got = [ev[event] for ev in by_seed.values() if event in ev]
            if not got:
                continue
            if not _has_water(got[0]):  # IoU is 0 or undefined without water: show how much land became water
                lines.append(f"| {event} (no labelled water) | {name} | false water "
                             f"{cell([100 * g.get('false_water_share', float('nan')) for g in got])} % of land | | | "
                             f"Otsu {cell([100 * g.get('otsu_false_water_share', float('nan')) for g in got])} % | "
                             f"{len(got)} |")
                continue
            lines.append(f"| {event} | {name} | {cell([_clean(g['water_iou']) for g in got])} | "
                         f"{cell([_clean(g['precision']) for g in got])} | {cell([_clean(g['recall']) for g in got])} | "
                         f"{cell([_clean(g['otsu_water_iou']) for g in got])} | {len(got)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "examples" / "all_events.yaml"),
                    help="recipe(s) whose folds run, comma-separated: each gets its rows in one table")
    ap.add_argument("--seeds", default="42,1,2", help="training seeds, comma-separated")
    ap.add_argument("--folds", default=",".join(FOLDS), help=f"subset of {', '.join(FOLDS)}")
    ap.add_argument("--baseline", action="store_true", help=f"--beside {BASELINE.relative_to(ROOT)}")
    ap.add_argument("--baseline-only", action="store_true", help=f"--scene-recipes {BASELINE.relative_to(ROOT)}")
    ap.add_argument("--scene-recipes", default="",
                    help="comma-separated North-Alabama-only recipes, each trained per seed and scored on every "
                         "other event, then chosen among per held-out event on the other events' scores; "
                         "replaces --recipe's folds and --baseline. Results are cached per recipe file name")
    ap.add_argument("--variants", default="",
                    help="also score each recipe's models (--recipe folds or --scene-recipes) with these inference "
                         "variants, comma-separated: adapt (BatchNorm statistics re-estimated on each held-out "
                         "event's own chips), downsample2 (predicted on a 2x coarser grid), tta (map --tta), "
                         "refine (map --refine guided), tta_refine (both), d4 (map --tta-transforms d4), "
                         "d4_refine (d4 and refine), selftrain (map --self-train: fine-tuned on each held-out "
                         "event's own confident predictions)")
    ap.add_argument("--beside", default="",
                    help="comma-separated North-Alabama-only recipes shown beside --recipe's folds, every seed "
                         "(trained if not cached); the table then adds the mean over the events every row scored")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score each --recipe fold's seed models together (their mean probability), one row "
                         "per recipe: what `-m a.pt -m b.pt -m c.pt` gives on an unseen event, at 3x the cost")
    ap.add_argument("--semi-recipe", default="",
                    help="a semi-supervised recipe (North Alabama labelled, Sen1Floods11 unlabelled, e.g. "
                         "examples/etci_semi.yaml): its round 0 trained once per seed, its rounds once per "
                         "Sen1Floods11 fold with the fold's events out of the unlabelled chips; rows '<name> "
                         "round 0' and '<name>' beside --recipe's folds")
    ap.add_argument("--quick", action="store_true", help="one seed, one epoch: for iterating, not for claims")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "loeo")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    names = [p for p in args.recipe.split(",") if p]
    missing = [p for p in names if not Path(p).is_file()]
    if missing:
        print(f"--recipe: {missing[0]}: file not found", file=sys.stderr)
        return 2
    stems = [Path(p).stem for p in names]
    if len(set(stems)) < len(stems):  # rows and cached folds are keyed by the file name
        print(f"--recipe: two recipes named '{next(s for s in stems if stems.count(s) > 1)}'", file=sys.stderr)
        return 2
    if not SHARED.is_dir():
        print(f"needs the real data at {SHARED}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from floodwatch.config import load_spec
    from floodwatch.data import open_dataset

    recipes = {Path(p): load_spec(Path(p)) for p in names}
    seeds = [int(s) for s in args.seeds.split(",")][:1 if args.quick else None]
    epochs = 1 if args.quick else None
    folds = [f for f in args.folds.split(",") if f]
    unknown = [f for f in folds if f not in FOLDS]
    if unknown:
        print(f"--folds: unknown fold '{unknown[0]}' (known: {', '.join(FOLDS)})", file=sys.stderr)
        return 2
    if args.semi_recipe and not Path(args.semi_recipe).is_file():
        print(f"--semi-recipe: {args.semi_recipe}: file not found", file=sys.stderr)
        return 2
    if args.semi_recipe and Path(args.semi_recipe).stem in stems:  # rows and cached folds are keyed by the name
        print(f"--semi-recipe: '{Path(args.semi_recipe).stem}' is also a --recipe", file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    if args.beside and args.scene_recipes:
        print("--beside: shows recipes beside --recipe's folds; with --scene-recipes list them there", file=sys.stderr)
        return 2
    if any(v not in VARIANTS for v in variants):
        print(f"--variants: unknown variant in '{args.variants}' (known: {', '.join(VARIANTS)})", file=sys.stderr)
        return 2
    suffix = "_quick" if args.quick else ""
    s1_chips = [s for s in open_dataset(S1) if s.valid.any()]
    scene_recipes = [Path(p) for p in args.scene_recipes.split(",") if p]
    beside = list(dict.fromkeys([Path(p) for p in args.beside.split(",") if p] + ([BASELINE] if args.baseline else [])))
    if args.baseline_only:
        scene_recipes = scene_recipes or [BASELINE]
    rows: dict[str, list[dict]] = {} if scene_recipes else {path.stem: [] for path in recipes}
    for seed in seeds:
        for path, recipe in ([] if scene_recipes else recipes.items()):  # the folds of --recipe
            work = args.work / (path.stem + suffix)
            work.mkdir(parents=True, exist_ok=True)
            for fold in folds:
                row = run_fold(recipe, fold, seed, work, epochs, s1_chips)
                rows[path.stem].append(row)
                print(f"[{time.strftime('%H:%M:%S')}] {path.stem} {fold} seed {seed}: " + ", ".join(
                    f"{e} {_clean(m['water_iou']):.3f} (Otsu {_clean(m['otsu_water_iou']):.3f})"
                    for e, m in row["events"].items()), flush=True)
                for variant in variants:
                    vrow = run_fold_variant(recipe, fold, seed, work, variant)
                    rows.setdefault(f"{path.stem} + {variant}", []).append(vrow)
                    print(f"[{time.strftime('%H:%M:%S')}] {path.stem} + {variant} {fold} seed {seed}: " + ", ".join(
                        f"{e} {_clean(m['water_iou']):.3f}" for e, m in vrow["events"].items()), flush=True)
        for path in ([] if scene_recipes else beside):
            row = run_scene_recipe(path, seed, args.work / (path.stem + suffix), epochs)
            rows.setdefault(path.stem, []).append(row)
        if args.semi_recipe:
            semi = Path(args.semi_recipe)
            work = args.work / (semi.stem + suffix)
            rows.setdefault(f"{semi.stem} round 0", []).append(run_semi_round0(semi, seed, work, epochs))
            for fold in [f for f in SEMI_FOLDS if f in folds]:
                row = run_semi_fold(semi, fold, seed, work, epochs)
                rows.setdefault(semi.stem, []).append(row)
                print(f"[{time.strftime('%H:%M:%S')}] {semi.stem} {fold} seed {seed}: " + ", ".join(
                    f"{e} {_clean(m['water_iou']):.3f} (Otsu {_clean(m['otsu_water_iou']):.3f})"
                    for e, m in row["events"].items()), flush=True)
        for path in scene_recipes:
            row = run_scene_recipe(path, seed, args.work / (path.stem + suffix), epochs)
            rows.setdefault(path.stem, []).append(row)
            for variant in variants:
                rows.setdefault(f"{path.stem} + {variant}", []).append(
                    scene_recipe_variant(path, seed, args.work / (path.stem + suffix), epochs, variant))
        print(table(rows), flush=True)  # the table so far: a long run can be read (or stopped) between seeds
    if args.ensemble and len(seeds) > 1:
        for path, recipe in ([] if scene_recipes else recipes.items()):
            name = f"{path.stem}, seeds {'+'.join(map(str, seeds))} as one ensemble"
            rows[name] = [run_fold_ensemble(recipe, fold, seeds, args.work / (path.stem + suffix)) for fold in folds]
    if len(scene_recipes) > 1:
        rows["nested choice"], choice = nested_choice({p.stem: rows[p.stem] for p in scene_recipes})
        print("nested choice, per held-out event (best mean over the other events): " +
              ", ".join(f"{e}: {r}" for e, r in choice.items()))
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
