"""One GPU check for a single CUDA machine: training, inference, augmentation, scene mapping and DDP speed.

    python benchmarks/gpu_check.py --out DIR            # on the GPU machine (benchmarks/gpu_check.sh runs it)
    python benchmarks/gpu_check.py --dry-run --out DIR  # same code on the CPU, tiny sizes, under a minute

Writes DIR/gpu_check.json (strict JSON) and DIR/gpu_check.md (the table for docs/benchmarks.md). Every
measurement runs on its own: one that fails is recorded with its one-line error and the others still run,
so a short lease always brings back a table. Throughputs are the median of timed rounds after warm-up
rounds, with the device synchronised around each round.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

RECIPE = ROOT / "examples" / "etci_northal.yaml"


@dataclass(frozen=True)
class Sizes:
    """What one run measures with; `dry` is the CPU smoke test's."""

    train_batch: int
    train_size: int
    infer_batch: int
    infer_size: int
    augment_batch: int
    augment_size: int
    scene_side: int
    map_batch: int
    rounds: int
    warmup: int
    per_round: int
    compile: bool
    depths: tuple[int, ...]


FULL = Sizes(train_batch=64, train_size=256, infer_batch=32, infer_size=512, augment_batch=512, augment_size=256,
             scene_side=12288, map_batch=16, rounds=5, warmup=3, per_round=5, compile=True, depths=(10, 18))
DRY = Sizes(train_batch=2, train_size=64, infer_batch=1, infer_size=32, augment_batch=4, augment_size=64,
            scene_side=600, map_batch=2, rounds=1, warmup=1, per_round=1, compile=False, depths=(10,))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, items: int, sizes: Sizes) -> dict:
    """items/s of `fn` (which handles `items` items per call): median over rounds of `per_round` calls."""
    per_round = sizes.per_round
    for _ in range(sizes.warmup):
        fn()
    _sync(device)
    rates = []
    for _ in range(sizes.rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        _sync(device)
        rates.append(items * per_round / (time.perf_counter() - t0))
    return {"per_s": statistics.median(rates), "rounds": [round(r, 2) for r in rates]}


def recipe() -> dict:
    spec = yaml.safe_load(RECIPE.read_text())
    return {"num_layers": int(spec["model_config"]["num_layers"]), "loss": spec["training_config"]["loss"],
            "augmentation": spec["dataset_config"]["augmentation_config"]}


def _model(num_layers: int, device: torch.device) -> torch.nn.Module:
    from floodwatch.models import build_model

    torch.manual_seed(0)
    return build_model(num_layers=num_layers, in_channels=2, num_classes=2).to(device)


# -- the measurements ------------------------------------------------------------------------------------
def train_step(device: torch.device, sizes: Sizes, precision: str) -> dict:
    """The reference recipe's step (its model, loss, Adam) on random chips: chips/s."""
    from floodwatch.training.losses import build_loss

    r = recipe()
    model = _model(r["num_layers"], device).train()
    loss_fn = build_loss(r["loss"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, s = sizes.train_batch, sizes.train_size
    x = torch.randn(n, 2, s, s, device=device)
    y = torch.randint(0, 2, (n, s, s), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out = timed(step, device, n, sizes)
    return {**out, "model": f"ResNet-{r['num_layers']} U-Net", "batch": n, "size": s, "loss": r["loss"]}


def inference(device: torch.device, sizes: Sizes, num_layers: int, dtype: str, channels_last: bool,
              mode: str) -> dict:
    """Forward passes at infer_size², chips/s. mode: eager, compile (torch.compile) or graph (CUDA graph)."""
    model = _model(num_layers, device).eval()
    n, s = sizes.infer_batch, sizes.infer_size
    cast = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(dtype=cast, memory_format=fmt)
    x = torch.randn(n, 2, s, s, device=device).to(dtype=cast, memory_format=fmt)
    if mode == "compile":
        model = torch.compile(model)
    with torch.inference_mode():
        if mode == "graph":
            if device.type != "cuda":
                return {"skipped": "CUDA graphs need a GPU"}
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(x)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                model(x)
            fn = graph.replay
        else:
            def fn():
                model(x)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        first = time.perf_counter() - t0
        out = timed(fn, device, n, sizes)
    return {**out, "batch": n, "size": s, "first_call_s": round(first, 2)}


def augmenter(device: torch.device, sizes: Sizes) -> dict:
    """The recipe's BatchAugmenter on the device, chips/s at augment_size²."""
    from floodwatch.augment.batch import BatchAugmenter
    from floodwatch.data.preprocess import Preprocessing

    aug = BatchAugmenter(recipe()["augmentation"], seed=0, db_scale=Preprocessing())
    n, s = sizes.augment_batch, sizes.augment_size
    image = torch.randn(n, 2, s, s, device=device)
    mask = torch.randint(0, 2, (n, s, s), device=device)
    valid = torch.ones(n, s, s, dtype=torch.bool, device=device)
    out = timed(lambda: aug(image, mask, valid), device, n, sizes)
    return {**out, "batch": n, "size": s, "target_per_s": 5000}


def scene_mapping(device: torch.device, sizes: Sizes, workdir: Path) -> dict:
    """`map_scene` with the torch back-end on the device over a synthetic scene with no-data wedges."""
    from benchmarks import map_scene as bench
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.inference import TorchPredictor
    from floodwatch.mapping import map_scene
    from floodwatch.models.checkpoint import save_checkpoint

    bench.CACHE = workdir
    scene, _ = bench.scene_path(sizes.scene_side, sizes.scene_side)
    cfg = dict(num_layers=recipe()["num_layers"], in_channels=2, num_classes=2)
    ckpt = save_checkpoint(workdir / "model.pt", _model(cfg["num_layers"], torch.device("cpu")), model_config=cfg,
                           preprocessing=Preprocessing())
    predictor = TorchPredictor(ckpt, device=str(device))
    t0 = time.perf_counter()
    result = map_scene(scene, predictor, workdir / "out", batch=sizes.map_batch, progress=False, backend="torch")
    seconds = time.perf_counter() - t0
    st = result.stats
    return {"per_s": st["valid_km2"] / seconds, "unit": "km²/s", "seconds": round(seconds, 2),
            "scene_px": [sizes.scene_side, sizes.scene_side], "valid_km2": round(st["valid_km2"], 1),
            "stage_seconds": st["stage_seconds"], "amp_fp16": predictor.amp}


def ddp_one(device: torch.device, sizes: Sizes) -> dict:
    """DistributedDataParallel with world size 1 (NCCL on CUDA, gloo on CPU): a few steps, one all_reduce."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from floodwatch.training.distributed import free_port

    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        model = DistributedDataParallel(_model(recipe()["num_layers"], device),
                                        device_ids=[device.index or 0] if device.type == "cuda" else None)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(sizes.train_batch, 2, sizes.train_size, sizes.train_size, device=device)
        y = torch.randint(0, 2, (sizes.train_batch, sizes.train_size, sizes.train_size), device=device)
        losses = []
        for _ in range(3):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        t = torch.ones(1, device=device)
        dist.all_reduce(t)
        ok = all(np.isfinite(losses)) and float(t) == 1.0
        return {"ok": bool(ok), "backend": dist.get_backend(), "losses": [round(v, 4) for v in losses]}
    finally:
        dist.destroy_process_group()


# -- the run ----------------------------------------------------------------------------------------------
def checks(device: torch.device, sizes: Sizes, workdir: Path) -> list[tuple[str, str, Callable[[], dict]]]:
    """(group, name, measurement) in the order of the table."""
    out = [("train", "training step, fp32", lambda: train_step(device, sizes, "fp32")),
           ("train", "training step, AMP bf16", lambda: train_step(device, sizes, "bf16"))]
    for depth in sizes.depths:
        for dtype, cl, mode in (("fp32", False, "eager"), ("bf16", False, "eager"), ("fp16", False, "eager"),
                                ("bf16", True, "eager"), ("fp16", True, "eager"), ("bf16", True, "compile"),
                                ("bf16", True, "graph")):
            if mode == "compile" and not sizes.compile:
                out.append(("infer", f"ResNet-{depth} {dtype} channels_last torch.compile",
                            lambda: {"skipped": "torch.compile only in the full run"}))
                continue
            name = f"ResNet-{depth} {dtype}{' channels_last' if cl else ''}{'' if mode == 'eager' else ' ' + mode}"
            out.append(("infer", name, lambda d=depth, t=dtype, c=cl, m=mode: inference(device, sizes, d, t, c, m)))
    out.append(("augment", "BatchAugmenter (recipe's config)", lambda: augmenter(device, sizes)))
    out.append(("map", "map_scene, torch back-end", lambda: scene_mapping(device, sizes, workdir)))
    out.append(("ddp", "DDP, world size 1", lambda: ddp_one(device, sizes)))
    return out


def machine(device: torch.device) -> dict:
    info = {"host": socket.gethostname(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": str(device), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def markdown(report: dict) -> str:
    units = {"train": "chips/s", "infer": "chips/s", "augment": "chips/s", "map": "km²/s", "ddp": ""}
    m = report["machine"]
    lines = [f"GPU check on {m.get('gpu', m['device'])} (torch {m['torch']}, CUDA {m['cuda']}), {m['date']}"
             f"{' - DRY RUN on CPU, tiny sizes' if report['dry_run'] else ''}", "",
             "| group | measurement | result | unit | notes |", "|---|---|---|---|---|"]
    for r in report["results"]:
        if "error" in r:
            value, note = "failed", r["error"]
        elif "skipped" in r:
            value, note = "-", r["skipped"]
        elif r["group"] == "ddp":
            value, note = "ok" if r["ok"] else "FAILED", f"{r['backend']}, losses {r['losses']}"
        else:
            value = f"{r['per_s']:,.1f}"
            note = ", ".join(f"{k} {r[k]}" for k in ("batch", "size", "seconds", "first_call_s", "target_per_s")
                             if k in r)
        lines.append(f"| {r['group']} | {r['name']} | {value} | {units[r['group']]} | {note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: proves the code runs")
    ap.add_argument("--only", default="", help="comma-separated groups to run (train,infer,augment,map,ddp)")
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = DRY if args.dry_run else FULL
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    groups = {g for g in args.only.split(",") if g}
    report = {"dry_run": args.dry_run, "machine": machine(device), "sizes": sizes.__dict__, "results": []}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for group, name, fn in checks(device, sizes, Path(tmp)):
            if groups and group not in groups:
                continue
            t0 = time.perf_counter()
            try:
                row = fn()
            except Exception as exc:  # recorded, and the next measurement still runs
                row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
                traceback.print_exc()
            row = {"group": group, "name": name, **row, "wall_s": round(time.perf_counter() - t0, 2)}
            report["results"].append(row)
            shown = row.get("per_s", row.get("ok", row.get("skipped", row.get("error"))))
            print(f"{group:8s} {name:45s} {shown}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, allow_nan=False, default=str))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if any("error" in r for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
