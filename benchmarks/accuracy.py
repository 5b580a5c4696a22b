"""What do TTA, ensembling, temperature scaling and guided-filter refinement buy on real, held-out data?

    python benchmarks/accuracy.py --model results/etci/best.pt [--model results/etci_seed2/best.pt]
           [--spec examples/etci_northal.yaml | --etci-split splits.csv] [--tta d4] [--refine guided:r=2]
           [--out accuracy.md]

Sets: the held-out ETCI North Alabama tiles (the spec's blocked test split, or the CSV's 'test' ids),
every labelled Sen1Floods11 chip in ../shared/data, and the OMBRIA test triplets (single-band VV: skipped
with a note when the model needs other bands). Techniques: the plain first model, +TTA, +ensemble of all
--model (with and without TTA), +temperature (T fitted on the ETCI validation tiles, applied to the
plain model: it changes probabilities, hence ECE, not the 0.5 mask) and +refine (the plain model's probability
through the edge-aware guided filter, guidance = the SAR input; --refine as the CLI's), then the stacks
+TTA +refine and +ensemble +TTA +refine. Otsu is scored on the same pixels.
Prints one markdown table: water IoU (pixel-aggregated) and ECE per set, with each technique's change
against the plain model, all measured in this run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def etci_parts(spec: Path, split_csv: Path | None) -> dict[str, list]:
    """{'test': [...], 'val': [...]} ETCI North Alabama samples (labelled, non-empty)."""
    if split_csv is None:
        from floodwatch.config import load_spec
        from floodwatch.training.data import load_samples

        return load_samples(load_spec(spec), progress=False)
    from floodwatch.data import open_dataset
    from floodwatch.data.splits import read_split_csv

    ids = read_split_csv(split_csv)
    ds = open_dataset(SHARED / "etci2021" / "northal_20190302t234651")
    wanted = {i: name for name, members in ids.items() for i in members}
    parts: dict[str, list] = {}
    for s in ds:
        if s.id in wanted and s.mask is not None and not s.is_empty:
            parts.setdefault(wanted[s.id], []).append(s)
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, type=Path, help="checkpoint/ONNX; repeatable")
    ap.add_argument("--spec", type=Path, default=ROOT / "examples" / "etci_northal.yaml")
    ap.add_argument("--etci-split", type=Path, help="id,split CSV for the ETCI tiles (instead of the spec)")
    ap.add_argument("--tta", default="identity,hflip,vflip,rot90", help="TTA views ('d4' = all eight)")
    ap.add_argument("--refine", default="guided", help="refinement, as the CLI's --refine ('guided:r=2,eps=0.1')")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    ap.add_argument("--report", type=Path, help="also write an HTML accuracy report of the plain model here")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    from floodwatch.data import open_dataset
    from floodwatch.evaluation.calibration import calibrate
    from floodwatch.inference.temperature import TemperaturePredictor
    from floodwatch.evaluation.evaluate import evaluate
    from floodwatch.evaluation.otsu import OtsuBaseline
    from floodwatch.inference import load_predictor
    from floodwatch.inference.ensemble import EnsemblePredictor
    from floodwatch.inference.refine import RefinePredictor, parse_refine
    from floodwatch.inference.tta import TTAPredictor

    notes = []
    etci = etci_parts(args.spec, args.etci_split)
    sets = {"ETCI N. Alabama test": etci.get("test") or etci.get("val"),
            "Sen1Floods11 (all labelled)": list(open_dataset(SHARED / "sen1floods11")),
            "OMBRIA test": list(open_dataset(SHARED / "ombria_s1", split="test"))}
    if not etci.get("test"):
        notes.append("ETCI split has no test part: scored on its validation tiles (T then fitted on the same)")

    members = [load_predictor(m) for m in args.model]
    plain = members[0]
    techniques = {"plain": plain, "+TTA": TTAPredictor(plain, args.tta)}
    if len(members) > 1:
        ens = EnsemblePredictor(members, names=[str(m) for m in args.model])
        techniques["+ensemble"] = ens
        techniques["+ensemble +TTA"] = TTAPredictor(ens, args.tta)
    cal = calibrate(plain, etci["val"], max_pixels=500_000)
    techniques[f"+temperature (T={cal['temperature']:.2f})"] = TemperaturePredictor(plain, cal["temperature"])
    refine_kwargs = parse_refine(args.refine)
    if refine_kwargs is not None:
        refined = RefinePredictor(plain, **refine_kwargs)
        techniques[f"+refine ({refined.describe()})"] = refined
        # the techniques stack: refinement runs last, on the averaged probability
        techniques["+TTA +refine"] = RefinePredictor(techniques["+TTA"], **refine_kwargs)
        if len(members) > 1:
            techniques["+ensemble +TTA +refine"] = RefinePredictor(techniques["+ensemble +TTA"], **refine_kwargs)

    bands = list(plain.preprocessing.bands)
    results: dict[str, dict[str, dict]] = {}
    for set_name, samples in sets.items():
        if not all(b in samples[0].bands for b in bands):
            notes.append(f"{set_name}: skipped, its chips have bands {samples[0].bands} and the model needs {bands}")
            continue
        # the sources' conventional baselines (README): one VV threshold per scene for ETCI, VH per chip else
        otsu = (OtsuBaseline("VV", "scene").fit(samples) if set_name.startswith("ETCI")
                else OtsuBaseline("VH", "chip"))
        for tech, predictor in techniques.items():
            t0 = time.perf_counter()
            r = evaluate(predictor, samples, batch_size=args.batch_size, otsu=otsu, progress=sys.stderr.isatty())
            r["seconds"] = time.perf_counter() - t0
            results.setdefault(set_name, {})[tech] = r
            print(f"{set_name:28s} {tech:28s} IoU {r['water_iou']:.4f} ECE {r['ece']:.4f} "
                  f"({r['seconds']:.1f} s)", file=sys.stderr)

    lines = ["| technique | " + " | ".join(f"{s} IoU (Δ) | ECE (Δ)" for s in results) + " |",
             "|---|" + "---|---|" * len(results)]
    for tech in techniques:
        cells = []
        for set_name, per in results.items():
            r, base = per[tech], per["plain"]
            d_iou, d_ece = r["water_iou"] - base["water_iou"], r["ece"] - base["ece"]
            cells += [f"{r['water_iou']:.4f} ({d_iou:+.4f})", f"{r['ece']:.4f} ({d_ece:+.4f})"]
        lines.append(f"| {tech} | " + " | ".join(cells) + " |")
    otsu = []
    for per in results.values():
        o, base = per["plain"]["otsu"]["water_iou"], per["plain"]["water_iou"]
        otsu.append(f"{o:.4f} ({o - base:+.4f})")
    lines.append("| Otsu | " + " | ".join(f"{o} | –" for o in otsu) + " |")
    seconds = {tech: sum(per[tech]["seconds"] for per in results.values()) for tech in techniques}
    speed = ", ".join(f"{tech}: {seconds[tech] / max(seconds['plain'], 1e-9):.1f}x" for tech in techniques)
    table = "\n".join(lines)
    text = (f"models: {', '.join(map(str, args.model))}; TTA views: {args.tta}; refine: {args.refine}\n\n{table}\n\n"
            f"Δ: change against the plain model (IoU up and ECE down are better); Otsu's Δ is Otsu minus plain. "
            f"T fitted on {len(etci['val'])} ETCI validation tiles: ECE there {cal['fit']['ece_before']:.4f} -> "
            f"{cal['fit']['ece_after']:.4f}.\nRun time relative to plain: {speed}.\n"
            + "".join(f"\nnote: {n}" for n in notes) + "\n")
    print(text)
    if args.out:
        from floodwatch.io import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    if args.report:
        from floodwatch.evaluation.accuracy_report import write_accuracy_report

        index = write_accuracy_report(args.report, {s: per["plain"] for s, per in results.items()}, predictor=plain,
                                      samples={s: sets[s] for s in results}, title="accuracy (plain model)",
                                      notes=[f"model: {args.model[0]}"])
        print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
