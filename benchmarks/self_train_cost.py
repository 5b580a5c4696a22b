"""What `map --self-train` costs: the same scene mapped plain and self-trained, side by side, by the same torch
checkpoint (the default model's unless -m), alternating so that load on the machine falls on both alike.

    python benchmarks/self_train_cost.py                 # the 5,000² synthetic scene of map_scene.py, 2 rounds
    python benchmarks/self_train_cost.py --size 2048 --rounds 1

Each run is `floodwatch map -q` in its own process. Prints each run's wall seconds, the self-training's own
seconds (reading its tiles, pseudo-labelling, the optimiser steps) from stats.json, water IoU against the
scene's truth, and the ratio of self-trained to plain wall time. Accuracy on floods never seen is not measured
here (a synthetic scene is no unseen flood): that is `benchmarks/generalisation.py --variants selftrain`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from map_scene import iou_against_truth, scene_path  # noqa: E402  (the scene and its truth, cached)


def run_map(scene: Path, truth: Path, model: Path, out: Path, self_train: bool) -> dict:
    argv = [sys.executable, "-m", "floodwatch", "map", str(scene), "-m", str(model), "-o", str(out), "-q"]
    t0 = time.perf_counter()
    subprocess.run(argv + (["--self-train"] if self_train else []), check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    stats = json.loads((out / scene.stem / "stats.json").read_text())
    return {"seconds": seconds, "self_training": stats.get("self_training"),
            "iou": iou_against_truth(out / scene.stem / "flood_mask.tif", truth)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=5000, help="square synthetic scene side in px")
    ap.add_argument("--rounds", type=int, default=2, help="plain + self-trained pairs, alternating")
    ap.add_argument("-m", "--model", type=Path, default=None, help="a torch checkpoint (default: the default model's)")
    args = ap.parse_args(argv)
    from floodwatch.models.zoo import resolve_model

    model = args.model or resolve_model(None, "checkpoint")
    scene, truth = scene_path(args.size, args.size)
    rows = {"plain": [], "self-train": []}
    with tempfile.TemporaryDirectory(prefix="self-train-cost-") as tmp:
        for r in range(args.rounds):
            for mode in ("plain", "self-train"):
                row = run_map(scene, truth, model, Path(tmp) / f"{mode}_{r}", mode == "self-train")
                rows[mode].append(row)
                st = row["self_training"]
                extra = (f", self-training {st['seconds']:.1f} s ({st['read_seconds']:.1f} s reading {st['chips']} "
                         f"tiles, {st['steps_run']} steps)" if st else "")
                print(f"round {r + 1} {mode}: {row['seconds']:.1f} s, water IoU {row['iou']:.4f}{extra}", flush=True)
    plain = statistics.median(r["seconds"] for r in rows["plain"])
    trained = statistics.median(r["seconds"] for r in rows["self-train"])
    print(f"{args.size}² scene, {model.name}: plain {plain:.1f} s, self-trained {trained:.1f} s (medians): "
          f"{trained / plain:.2f}x the wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
