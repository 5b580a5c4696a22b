"""The whole path on synthetic data, on a laptop CPU: data -> spec -> train -> evaluate beside Otsu ->
chip inference -> a flood map of a georeferenced scene -> report.html. `floodwatch demo` is a thin shell
over `run_demo`.

Sizes are chosen so the full demo takes a few minutes on 2 CPU cores and `quick=True` about a minute;
the synthetic chips have known water, so the numbers mean something (a model that learned nothing
scores far below Otsu, a working one at or above it).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_path, ensure_output_dir, write_json

#: (chips, chip size px, epochs, ResNet depth, side of the mapped scene in px); the quick variant is what
#: the test suite runs.
FULL = dict(chips=96, size=64, epochs=10, num_layers=10, batch_size=8, scene=512)
QUICK = dict(chips=24, size=32, epochs=2, num_layers=10, batch_size=8, scene=192)
SCENE_SEED = 2024  # not a training chip's seed: the scene is new to the model


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    spec: Path
    checkpoint: Path
    metrics_json: Path
    predictions_dir: Path
    inference_dir: Path
    map_dir: Path
    report: Path
    metrics: dict[str, Any]
    map_stats: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def demo_spec(data_dir: str, *, size: int, epochs: int, num_layers: int, batch_size: int) -> dict[str, Any]:
    """A spec in TAO's sections; a split by region so the test chips come from places training never saw."""
    return {
        "dataset_config": {"data_root": data_dir, "format": "sen1floods11",
                           "split": {"method": "region", "fractions": [0.5, 0.25, 0.25], "seed": 0}},
        "model_config": {"arch": "resnet", "num_layers": num_layers, "model_input_height": size,
                         "model_input_width": size, "model_input_channels": 2},
        "training_config": {"batch_size": batch_size, "epochs": epochs, "learning_rate": 0.003,
                            "loss": "cross_dice_sum", "lr_scheduler": "cosine", "random_seed": 0,
                            "checkpoints": "best", "log_summary_steps": 5},
    }


def run_demo(out_dir: str | os.PathLike = "demo_out", quick: bool = False, *, progress: bool = True,
             console: Any = None) -> DemoResult:
    """Run every stage into `out_dir` and print where everything is; returns the paths and metrics."""
    from rich.console import Console

    from .config import load_spec
    from .data import write_synthetic_dataset
    from .evaluation.evaluate import evaluate, to_json_safe
    from .evaluation.report import learning_curve_png, print_metrics_table, write_html_report
    from .inference import load_predictor
    from .inference.chips import infer_chips
    from .training import train
    from .training.data import evaluation_samples

    console = console or Console()
    cfg = QUICK if quick else FULL
    out = Path(out_dir).resolve()
    _claim_output(out)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    console.rule(f"[bold]floodwatch demo{' (quick)' if quick else ''}")
    console.print(f"1/6 synthetic data: {cfg['chips']} chips of {cfg['size']} px, 4 regions")
    data_dir = write_synthetic_dataset(out / "data", chips=cfg["chips"], size=cfg["size"], seed=0)
    spec_path = out / "spec.yaml"
    with atomic_path(spec_path) as tmp:
        tmp.write_text(yaml.safe_dump(demo_spec("data", size=cfg["size"], epochs=cfg["epochs"],
                                                num_layers=cfg["num_layers"], batch_size=cfg["batch_size"]),
                                      sort_keys=False))
    split_regions = _split_regions(load_spec(spec_path))  # also fails here, with the field named, not in training
    stage("data")

    epochs = f"{cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}"
    console.print(f"2/6 training {ARCHITECTURE.format(**cfg)} for {epochs}")
    trained = train(spec_path, out / "results", name="demo", progress=progress, overwrite=True)  # a rerun replaces it
    checkpoint = Path(trained.best_checkpoint)
    stage("train")

    console.print("3/6 evaluating on the held-out test regions, beside Otsu")
    samples, described = evaluation_samples(spec=spec_path)
    predictor = load_predictor(checkpoint, fold_batch_norm=False)  # the report counts the trained parameters
    metrics = evaluate(predictor, samples, save_predictions=out / "predictions", progress=progress)
    metrics = {"model": str(checkpoint), "data": described, **metrics}
    metrics_json = write_json(out / "metrics.json", to_json_safe(metrics))
    print_metrics_table(metrics, console, title="demo: model beside Otsu on held-out regions")
    stage("evaluate")

    console.print("4/6 chip inference (GeoTIFF in -> masks, probabilities, overlays)")
    chosen = sorted(metrics["per_chip"], key=lambda r: -r["water_pixels"])[:3]
    inputs = [data_dir / "S1Hand" / f"{r['id']}_S1Hand.tif" for r in chosen]
    infer_chips(predictor, inputs, out / "inference", progress=progress, model=str(checkpoint))
    stage("infer")

    side = cfg["scene"]
    console.print(f"5/6 flood map of a new georeferenced scene ({side} x {side} px at 10 m, UTM 16N)")
    flood_map = map_synthetic_scene(predictor, out / "scene", out / "map", side=side, progress=progress)
    console.print(f"  mapped water {flood_map['stats']['flooded_km2']:.2f} km2, true water "
                  f"{flood_map['true_water_km2']:.2f} km2 (water IoU of the map {flood_map['water_iou']:.3f})")
    default_map = _map_with_default_model(out, side, progress)
    if default_map is not None:
        default_map["model"] = f"the shipped default model ({default_map.pop('name')})"
        flood_map["model"] = "the demo's model"
        console.print(f"  the shipped default model on the same scene: {default_map['stats']['flooded_km2']:.2f} "
                      f"km2 (water IoU {default_map['water_iou']:.3f}) -> {default_map['dir']}", markup=False)
    stage("map")

    console.print("6/6 report")
    curve = None
    history = trained.history
    metrics_csv = Path(trained.results_dir) / "metrics.csv"
    if metrics_csv.is_file():
        curve = learning_curve_png(metrics_csv, out / "learning_curve.png")
    n_params = sum(p.numel() for p in getattr(predictor, "model").parameters())
    with tempfile.TemporaryDirectory() as pictures:  # embedded in the report, not left beside it
        overlays = _example_pictures(predictor, samples, [r["id"] for r in chosen], Path(pictures))
        report = write_html_report(
            out / "report.html", title=TITLE, metrics=metrics,
            intro=_intro_html(cfg, n_params, split_regions), learning_curve=curve,
            learning_curve_note=_curve_note(history), overlays=overlays,
            overlay_labels=("SAR backscatter (VH)", "model vs truth", "Otsu threshold vs truth"),
            overlay_caption=("Three held-out test chips with the most water. Each picture: the radar image, then "
                             "the model's water and Otsu's, both coloured against the true water. "
                             f"Every chip's picture is in {os.path.relpath(out / 'predictions', out)}/."),
            sections=[("Flood map of a scene", _map_html(flood_map, out)),
                      *([("The same scene with the shipped default model", DEFAULT_MODEL_NOTE
                          + _map_html(default_map, out))] if default_map is not None else []),
                      ("Run", _run_html(cfg, seconds, checkpoint, out)),
                      ("Files", _files_html(out, checkpoint, flood_map["dir"])),
                      ("Next steps", NEXT_STEPS_HTML)])
    stage("report")

    for name, path in (("data", data_dir), ("spec", spec_path), ("checkpoint", checkpoint),
                       ("metrics", metrics_json), ("prediction overlays", out / "predictions"),
                       ("chip inference", out / "inference"), ("flood map", flood_map["dir"]), ("report", report)):
        console.print(f"  {name:<20} {path}", markup=False)
    console.print(f"done in {sum(seconds.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
    return DemoResult(out, data_dir, spec_path, checkpoint, metrics_json, out / "predictions", out / "inference",
                      flood_map["dir"], report, metrics, flood_map["stats"], seconds)


ARCHITECTURE = "U-Net with a ResNet-{num_layers} encoder"

#: marks a folder as the demo's output, which a rerun writes over
MARKER = ".floodwatch-demo"
TITLE = "floodwatch demo (synthetic Sentinel-1 chips)"


def _claim_output(out: Path) -> None:
    """The demo writes fixed names into `out` (spec.yaml, metrics.json, report.html, data/, ...): a folder
    holding anything, unless an earlier demo made it, is refused before any work rather than written over."""
    from .io import check_replaceable

    report = out / "report.html"
    earlier = (out / MARKER).is_file() or (  # a demo from before the marker: its report's title
        report.is_file() and f"<title>{TITLE}</title>" in report.read_text(encoding="utf-8", errors="replace")[:400])
    if not earlier:
        check_replaceable(out, ours=lambda entry: False, writer="floodwatch demo")
    ensure_output_dir(out)
    (out / MARKER).write_text("written by floodwatch demo: a rerun into this folder replaces what it wrote\n")


def _map_with_default_model(out: Path, side: int, progress: bool) -> dict[str, Any] | None:
    """The demo's scene mapped by the shipped default model (`floodwatch models info`), as a user's
    `floodwatch map scene.tif` does without -m; None when no default model is installed."""
    from .errors import NoDefaultModelError
    from .inference import load_predictor
    from .models.zoo import get_model, resolve_model

    try:
        model = resolve_model(None, "onnx")
    except NoDefaultModelError:
        return None
    card = get_model(None).card
    return {**map_synthetic_scene(load_predictor(model), out / "scene", out / "map_default_model", side=side,
                                  progress=progress), "name": f"{card.name} {card.version}"}


def map_synthetic_scene(predictor: Any, scene_dir: Path, map_dir: Path, *, side: int, progress: bool = True
                        ) -> dict[str, Any]:
    """Write a synthetic dual-pol GeoTIFF scene (with its true water as a label file), map it as
    `floodwatch map` does (`mapping.map_scene`) and score the map against the truth.

    Returns {'dir', 'stats' (the map's stats.json), 'true_water_km2', 'water_iou', 'comparison' (a PNG:
    radar | mapped water vs truth)}."""
    import rasterio

    from .data.sample import WATER
    from .data.synthetic import synth_scene, write_scene
    from .inference.overlay import comparison_rgb, sar_backdrop, save_png, side_by_side
    from .mapping import map_scene

    scene = synth_scene(side, side, seed=SCENE_SEED, water_fraction=0.18, nodata_border=side // 24,
                        id="synthetic_scene", region="scene")
    scene_dir.mkdir(parents=True, exist_ok=True)
    tif = write_scene(scene, scene_dir / "synthetic_scene.tif", label_path=scene_dir / "synthetic_scene_label.tif")
    result = map_scene(tif, predictor, map_dir, tile=256, overlap=32, batch=4, progress=progress)
    with rasterio.open(result.paths["mask"]) as src:
        mapped = src.read(1) == 1  # 1 flood; 0 dry, 255 no data
    truth, valid = scene.mask == WATER, scene.valid
    union = int((valid & (mapped | truth)).sum())
    backdrop = sar_backdrop(scene.image[1], valid)
    # beside the scene's folder, not in it: a rerun's map refuses a folder holding files it did not write
    comparison = save_png(Path(map_dir) / "map_vs_truth.png",
                          side_by_side([backdrop, comparison_rgb(backdrop, mapped, truth, valid)]))
    pixel_km2 = abs(scene.georef.transform[0] * scene.georef.transform[4]) / 1e6
    return {"dir": result.out_dir, "stats": result.stats, "comparison": comparison,
            "true_water_km2": float((truth & valid).sum()) * pixel_km2,
            "water_iou": float((valid & mapped & truth).sum()) / union if union else float("nan")}


def _split_regions(spec: Any) -> dict[str, list[str]]:
    """The regions in each split of the spec, as training draws them: what the report says was held out."""
    from .training.data import load_samples

    return {name: sorted({s.region or "(none)" for s in samples})
            for name, samples in load_samples(spec, progress=False).items() if samples}


def _intro_html(cfg: dict[str, Any], n_params: int, split_regions: dict[str, list[str]]) -> str:
    import html

    arch = ARCHITECTURE.format(**cfg)
    roles = {"train": "trained on", "val": "validated (which epoch to keep as best.pt) on",
             "test": "scored below on"}
    split = "; ".join(f"{roles.get(name, name)} {', '.join(regions)}" for name, regions in split_regions.items())
    return (f"<p>Model: <b>{html.escape(arch)}</b> (floodwatch.models; TAO's <code>resnet</code> arch), "
            f"{n_params / 1e6:.2f} M parameters, trained from scratch on {cfg['chips']} synthetic dual-pol "
            f"(VV, VH) chips of {cfg['size']} px for {cfg['epochs']} epochs on the CPU. Input: the two bands in "
            "dB, clipped and normalised; output: per-pixel probability of water. The chips come from a "
            "generator with known water, so every score below is measured against a true answer. They are "
            f"split by region, so that the test chips come from places training never saw: {html.escape(split)}."
            "</p><p><b>Synthetic data.</b> The chips and the scene are drawn by floodwatch's generator "
            "(<code>floodwatch data synth</code>): dark water on brighter land, with speckle. They are far easier "
            "than real Sentinel-1 floods, so the scores show that every stage works, not how well a model maps "
            "real floods. For that, see the default model's card (<code>floodwatch models info</code>): its "
            "scores on real flood events it never saw, beside Otsu's.</p>")


def _curve_note(history: list[dict[str, float]]) -> str:
    first = history[0] if history else {}
    return ("<p class=note>Left, the loss (cross-entropy + Dice) that training lowers: train_loss is the mean over "
            "the epoch's training steps (augmented crops), val_loss the same loss on the validation chips after "
            "the epoch. Right, the validation chips' scores after each epoch (defined above; accuracy: the share "
            "of pixels right); best.pt is the epoch with the highest water_iou. Before validating, the model's "
            "BatchNorm statistics are re-estimated on the epoch's training crops: after a handful of steps their "
            "running averages would still carry their initial values."
            + (f" Epoch 1: val_loss {first['val_loss']:.3g}, water IoU {first['water_iou']:.3f}." if first else "")
            + "</p>")


def _map_html(flood_map: dict[str, Any], out: Path) -> str:
    import html

    from .evaluation.report import _img_tag

    st = flood_map["stats"]
    rows = [("imaged (valid) area", f"{st['valid_km2']:.2f} km²"),
            # no permanent-water reference here: all water found counts as flood (as the quicklook says)
            ("mapped water (flood_mask.tif value 1)",
             f"{st['flooded_km2']:.2f} km²" + ("" if st["flooded_fraction"] is None else
                                              f" ({100 * st['flooded_fraction']:.1f} % of it)")),
            ("true water (the generator's mask)", f"{flood_map['true_water_km2']:.2f} km²"),
            ("water IoU of the map against the truth", f"{flood_map['water_iou']:.3f}"),
            ("flood polygons (GeoJSON, at least 1000 m²)", f"{st['polygons']}"),
            ("tiles of 256 px, 32 px overlap", f"{st['tiles']}, {st['runtime_s']:.1f} s")]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    folder = Path(os.path.relpath(flood_map["dir"], out)).as_posix()
    model = flood_map.get("model", "the demo's model")
    return (f"<p>{html.escape(model[0].upper() + model[1:])} maps a new {st['width']} x {st['height']} px "
            f"synthetic scene (10 m pixels, {html.escape(st['crs'])}; <code>scene/synthetic_scene.tif</code>, its "
            "true water beside it), tile by tile, as <code>floodwatch map</code> does: a GeoTIFF flood mask and "
            "probability, flood polygons, stats.json and a quicklook in "
            f"<a href=\"{html.escape(folder)}/\"><code>{html.escape(folder)}/</code></a>.</p><table>{table}</table>"
            "<figure style=\"width:640px\"><div class=panels style=\"grid-template-columns:1fr 1fr\"><span>SAR "
            "backscatter (VH, dB)</span><span>mapped water vs true water</span></div>"
            f"{_img_tag(flood_map['comparison'], 'flood map vs truth')}<figcaption>Colours as in the examples: "
            "blue water found, red false alarm, yellow missed water, dark no data.</figcaption></figure>"
            # at its own size: its title and legend are text drawn into the picture, unreadable shrunk
            f"<figure>{_img_tag(flood_map['dir'] / 'quicklook.png', 'quicklook')}<figcaption>The map's own "
            "quicklook.png, as <code>floodwatch map</code> writes it beside the GeoTIFFs.</figcaption></figure>")


#: why the default model scores lower on the demo's scene than the model the demo just trained
DEFAULT_MODEL_NOTE = ("<p class=note>What <code>floodwatch map scene.tif</code> gives without <code>-m</code>. "
                      "The default model learned from real Sentinel-1 floods and has never seen this generator's "
                      "scenes, while the demo's model learned from nothing else: a lower score here is expected and "
                      "says nothing about real scenes. For those, use the default model or one trained on real "
                      "labels, not the demo's.</p>")


#: where to go after the demo, with the commands that do it: first the main job with the shipped model
NEXT_STEPS_HTML = """<ol>
<li>Map a real Sentinel-1 scene with the shipped default model (read its card first:
<code>floodwatch models info</code>): <code>floodwatch map SCENE.tif -o maps/</code> (VV and VH in dB; GeoTIFF
mask, polygons, km²). To get a scene: <code>floodwatch fetch --bbox W,S,E,N --start 2024-05-01 --end
2024-05-13 -o s1</code> (Planetary Computer, with <code>PC_SDK_SUBSCRIPTION_KEY</code> set).</li>
<li>Look at labelled data: <code>floodwatch data inspect FOLDER</code> (Sen1Floods11, ETCI 2021, OMBRIA,
STAC Overflow; the layout is detected).</li>
<li>Train on it: <code>floodwatch train -e examples/sen1floods11.yaml -r runs -n s1f11</code>, its
<code>data_root</code> pointed at your copy; add <code>--resume</code> after an interruption. A GPU makes real
runs practical.</li>
<li>Score it beside Otsu on held-out chips, with an HTML report:
<code>floodwatch evaluate -m runs/s1f11/best.pt -e examples/sen1floods11.yaml --report eval/</code>.</li>
<li>Deploy: <code>floodwatch export</code> to ONNX (fp16/int8) and <code>floodwatch serve</code> for Triton;
watch an area with <code>floodwatch aoi add</code>, <code>floodwatch aoi watch</code> (a STAC catalog) and
<code>floodwatch web</code>.</li>
</ol>"""


def _run_html(cfg: dict[str, Any], seconds: dict[str, float], checkpoint: Path, out: Path) -> str:
    import html

    labels = {"chips": "synthetic chips", "size": "chip side (px)", "epochs": "epochs",
              "num_layers": "ResNet depth (encoder layers)", "batch_size": "batch size (chips per step)",
              "scene": "mapped scene side (px, 10 m each)"}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in
                   [*((labels.get(k, k), v) for k, v in cfg.items()),
                    *((f"time: {k} (s)", f"{v:.1f}") for k, v in seconds.items())])
    return f"<table>{rows}</table>"


def _files_html(out: Path, checkpoint: Path, map_dir: Path) -> str:
    """Links relative to the report, so that they work wherever the output folder is moved or copied."""
    import html

    entries = [("spec.yaml", "the training spec (TAO sections), for <code>floodwatch train -e</code>"),
               (checkpoint, "the trained checkpoint, for <code>-m</code> in evaluate, infer, map, export"),
               ("metrics.json", "every score above, per region and per chip"),
               ("predictions", "one picture per test chip, as <code>floodwatch evaluate --save-predictions</code> "
                "writes"),
               ("inference", "chip inference: masks, probabilities, overlays, summary.json"),
               (map_dir, "the flood map: flood_mask.tif, flood_probability.tif, flood_polygons.geojson, stats.json"),
               ("data", "the synthetic chips, in the Sen1Floods11 layout")]
    items = []
    for path, what in entries:
        rel = Path(os.path.relpath(out / path, out)).as_posix() + ("/" if (out / path).is_dir() else "")
        items.append(f'<li><a href="{html.escape(rel)}"><code>{html.escape(rel)}</code></a>: {what}</li>')
    return f"<ul>{''.join(items)}</ul>"


def _example_pictures(predictor: Any, samples: list[Any], ids: list[str], folder: Path) -> list[Path]:
    """SAR | model vs truth | Otsu vs truth for the chosen chips, without the legend strip that evaluate's
    pictures carry: the report labels the panels and shows the legend itself, at any width."""
    import numpy as np

    from .data.preprocess import network_input
    from .data.sample import IGNORE_INDEX, WATER, band_index
    from .evaluation.otsu import OtsuBaseline
    from .inference.overlay import comparison_rgb, safe_name, sar_backdrop, save_png, side_by_side

    otsu = OtsuBaseline.for_dataset(samples)
    by_id = {s.id: s for s in samples}
    pictures = []
    for chip_id in ids:
        s = by_id[chip_id]
        prob = np.asarray(predictor.predict(network_input(s, predictor.preprocessing)[None]))[0]
        scored, truth = s.valid & (s.mask != IGNORE_INDEX), s.mask == WATER
        backdrop = sar_backdrop(s.image[band_index(s, "VH")], s.valid)
        pictures.append(save_png(folder / f"{safe_name(chip_id)}.png", side_by_side(
            [backdrop, comparison_rgb(backdrop, prob >= 0.5, truth, scored),
             comparison_rgb(backdrop, otsu.predict(s), truth, scored)])))
    return pictures
