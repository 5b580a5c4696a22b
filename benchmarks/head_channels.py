"""Is a one-channel head faster? The shipped model's two-logit head against its exact one-channel fold.

    python benchmarks/head_channels.py [--checkpoint model.pt] [--batch 4] [--size 512] [--runs 8] [--threads 2]

With two classes only the difference of the logits matters (p = sigmoid(l1 - l0)), so the head's 3x3 conv
16 -> 2 folds exactly into a conv 16 -> 1 with weights w1 - w0 and bias b1 - b0. This exports both from the same
checkpoint (default: the shipped floodwatch-s1), quantises both to INT8 with the same calibration chips, and
times ONNX Runtime on the same batch, alternating the two models run by run. Prints the median seconds per
batch, the ratio two-channel / one-channel (above 1: the fold is faster), and how often the INT8 masks agree.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "floodwatch" / "models" / "zoo" / "floodwatch-s1" / "model.pt"


def one_channel(model):
    """A copy of `model` whose head gives l1 - l0 as one channel."""
    import torch

    folded = copy.deepcopy(model)
    head = model.head
    conv = torch.nn.Conv2d(head.in_channels, 1, head.kernel_size, padding=head.padding)
    with torch.no_grad():
        conv.weight.copy_(head.weight[1:2] - head.weight[0:1])
        conv.bias.copy_(head.bias[1:2] - head.bias[0:1])
    folded.head = conv
    return folded


def export_pair(checkpoint: Path, folder: Path) -> dict[str, Path]:
    import onnx
    import torch

    from floodwatch.data.synthetic import synth_chips
    from floodwatch.export.onnx import _torch_export, metadata_for, set_metadata
    from floodwatch.export.quantize import quantize_int8
    from floodwatch.models.checkpoint import load_model

    model, meta = load_model(checkpoint)
    model.eval()
    prep = meta["preprocessing_obj"]
    calibration = np.stack([c.image for c in synth_chips(16, size=256, seed=3)])  # dB chips, as `export` takes
    paths = {}
    for name, net in (("two", model), ("one", one_channel(model))):
        fp32 = folder / f"{name}.onnx"
        _torch_export(net, torch.randn(2, prep.channels, 64, 64), fp32, opset=17, exporter="dynamo", dynamic_hw=True)
        proto = onnx.load(str(fp32))
        set_metadata(proto, metadata_for(meta, precision="fp32"))
        onnx.save_model(proto, str(fp32))
        quantize_int8(fp32, folder / f"{name}.int8.onnx", calibration)
        paths[f"{name} fp32"], paths[f"{name} int8"] = fp32, folder / f"{name}.int8.onnx"
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=SHIPPED)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from floodwatch.data.preprocess import Preprocessing
    from floodwatch.export.onnx import onnx_session, read_metadata, synthetic_inputs

    with tempfile.TemporaryDirectory() as tmp:
        paths = export_pair(args.checkpoint, Path(tmp))
        prep = Preprocessing.from_dict(read_metadata(paths["two fp32"])["preprocessing"])
        x = synthetic_inputs(prep, args.batch, args.size, args.size)  # synthetic SAR tiles with water in them
        print(f"| precision | two-channel head, s per batch of {args.batch} | one-channel head | ratio two / one |")
        print("|---|---|---|---|")
        outputs = {}
        for precision in ("fp32", "int8"):
            sessions = {n: onnx_session(paths[f"{n} {precision}"], ["CPUExecutionProvider"], threads=args.threads)
                        for n in ("two", "one")}
            for n, s in sessions.items():  # warm-up
                outputs[n, precision] = s.run(None, {"input": x})[0]
            times: dict[str, list[float]] = {n: [] for n in sessions}
            for _ in range(args.runs):
                for n, s in sessions.items():
                    start = time.perf_counter()
                    s.run(None, {"input": x})
                    times[n].append(time.perf_counter() - start)
            two, one = (float(np.median(times[n])) for n in ("two", "one"))
            print(f"| {precision} | {two:.4f} | {one:.4f} | {two / one:.3f} |")
        for precision in ("fp32", "int8"):
            two, one = outputs["two", precision], outputs["one", precision]
            agree = float(((two[:, 1] > two[:, 0]) == (one[:, 0] > 0)).mean())
            print(f"{precision}: max |(l1 - l0) - one-channel logit| {float(np.abs(two[:, 1] - two[:, 0] - one[:, 0]).max()):.3g}, "
                  f"masks agree on {100 * agree:.3f} % of pixels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
