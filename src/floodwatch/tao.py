"""TAO's UNet spec (protobuf text format) -> floodwatch's spec dict.

No .proto schema is needed: protobuf text is `name: value` and `name { ... }`, a field given twice is
repeated. The fields TAO always treats as repeated (target_classes, freeze_blocks) become lists
even when given once. Every field of TAO's UNet experiment is either read (some under another name:
RENAMED, data_sources, use_amp) or dropped with its reason (IGNORED), which convert, validate and train list:
a TAO field is never refused as if it were a typo.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import SpecError

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?(?![\w.]))
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>[:{}<>;,\[\]])
""", re.X)

REPEATED = {"target_classes", "freeze_blocks", "data_source"}

_TAO_WEIGHTS = "TAO's .hdf5/.tlt weights are not read: give train a floodwatch or torchvision pretrained model"
_RUNTIME = "a TensorFlow/TAO runtime setting"
#: TAO UNet settings with no counterpart here, each with the reason it is dropped (listed by `spec convert`,
#: `spec validate` and `train`, so that a run does not look as if it applied them).
IGNORED: dict[str, dict[str, str]] = {
    "": {"evaluation_config": "evaluate takes its options itself"},
    "dataset_config": {
        "resize_padding": "chips are cropped to model_input_height/width, not resized",
        "resize_method": "chips are cropped to model_input_height/width, not resized",
        "buffer_size": "every epoch shuffles all chips", "filter_data": _RUNTIME, "load_graph": _TAO_WEIGHTS,
        "dataloader": _RUNTIME,
        "preprocess": "the pre-processing is fitted on the training chips, or set by dataset_config.preprocessing"},
    "model_config": {
        "load_graph": _TAO_WEIGHTS, "pretrained_model_file": _TAO_WEIGHTS, "freeze_pretrained_layers": _TAO_WEIGHTS,
        "allow_loaded_model_modification": _TAO_WEIGHTS, "remove_head": _TAO_WEIGHTS,
        "pruned_model_path": "a pruned floodwatch model is given to train as its pretrained model",
        "byom_model": "TAO's bring-your-own-model import is not supported",
        "enable_qat": "no quantisation-aware training: export quantises to INT8 after training",
        "dropout_rate": "this U-Net has no dropout layers",
        "use_pooling": "the ResNet stem always max-pools, as torchvision's",
        "freeze_bn": "batch-norm layers are not frozen apart from freeze_blocks"},
    "training_config": {
        "visualizer": "metrics.csv and learning_curve.png are written instead", "data_options": _RUNTIME,
        "loss_scale": _RUNTIME, "use_xla": _RUNTIME, "use_trt": _RUNTIME, "crossvalidation_idx": _RUNTIME,
        "weights_monitor": _RUNTIME, "buffer_size": "every epoch shuffles all chips",
        "max_steps": "training runs training_config.epochs", "warmup_steps": "no learning-rate warm-up here",
        "weight_decay": "training_config.regularizer sets it: type L2 and its weight",
        "augment": "dataset_config.augment decides"},
}
#: TAO fields given under another name here: section -> {TAO name: (section, our name)}
RENAMED = {
    "": {"data_class_config": ("dataset_config", "data_class_config")},
    "model_config": {"activation": ("training_config", "activation")},
    "training_config": {"num_epochs": ("training_config", "epochs")},
}


class Repeated(list):
    """A field given more than once where TAO has no repeated field of that name: validation then says so
    (with `lines`) for a setting that takes one value, in place of "not a valid integer"."""

    lines: list[int]


class TaoDict(dict):
    """The converted spec; `lines` maps a field's path (section, field, ...) to the line it was given on."""

    lines: dict[tuple[str, ...], int]


def parse_text_proto(text: str, source: str = "spec",
                     lines: dict[tuple[str, ...], int] | None = None) -> dict[str, Any]:
    """Protobuf text format -> nested dicts; repeated fields -> lists. `lines` collects each field's line."""
    lines = lines if lines is not None else {}
    tokens = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SpecError(f"{source}: line {line}: cannot parse {text[pos:pos + 20]!r}")
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    tokens.append(("eof", "", line))
    i = 0

    def err(msg: str) -> SpecError:
        return SpecError(f"{source}: line {tokens[i][2]}: {msg}")

    def value(tok: tuple[str, str, int]) -> Any:
        kind, text_, _ = tok
        if kind == "string":
            return bytes(text_[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            t = text_.rstrip("fF")
            return int(t) if re.fullmatch(r"[-+]?\d+", t) else float(t)
        if kind == "ident":
            low = text_.lower()
            if low in ("true", "false"):
                return low == "true"
            if low in ("inf", "infinity", "nan"):
                return float(low)
            return text_  # an enum value, e.g. L2, FLOAT32
        raise err(f"expected a value, got {text_!r}")

    def message(close: str | None, path: tuple[str, ...] = ()) -> dict[str, Any]:
        nonlocal i
        out: dict[str, Any] = {}
        repeated: set[str] = set()
        while True:
            kind, tok, _ = tokens[i]
            if kind == "eof":
                if close:
                    raise err(f"missing '{close}' before the end of the file")
                return out
            if kind == "punct" and tok == close:
                i += 1
                return out
            if kind == "punct" and tok in ";,":
                i += 1
                continue
            if kind != "ident":
                raise err(f"expected a field name, got {tok!r}")
            name, at = tok, tokens[i][2]
            lines.setdefault((*path, name), at)
            i += 1
            if tokens[i][1] == ":":
                i += 1
            kind, tok, _ = tokens[i]
            if tok in ("{", "<"):
                i += 1
                val: Any = message("}" if tok == "{" else ">", (*path, name))
            elif tok == "[":  # short form of a repeated field: name: [a, b]
                i += 1
                val = []
                while tokens[i][1] != "]":
                    if tokens[i][1] == ",":
                        i += 1
                        continue
                    val.append(value(tokens[i]))
                    i += 1
                i += 1
                if name in out and not isinstance(out[name], list):
                    out[name] = [out[name]]
                out.setdefault(name, []).extend(val)
                continue
            else:
                val = value(tokens[i])
                i += 1
            if name in REPEATED:
                out.setdefault(name, []).append(val)
            elif name in repeated:
                out[name].append(val)
                out[name].lines.append(at)
            elif name in out:  # a second occurrence: the field is repeated
                out[name] = Repeated([out[name], val])
                out[name].lines = [lines[(*path, name)], at]
                repeated.add(name)
            else:
                out[name] = val

    return message(None)


def _scheduler(tao: Any, ignored: list[str]) -> Any:
    """TAO's lr_scheduler { cosine_decay {...} } / { exponential_decay {...} } -> ours."""
    if not isinstance(tao, dict):
        return tao
    where = "training_config.lr_scheduler"
    if "cosine_decay" in tao:
        d = tao["cosine_decay"] if isinstance(tao["cosine_decay"], dict) else {}
        if "decay_steps" in d:
            ignored.append(f"{where}.cosine_decay.decay_steps (the cosine runs over all training_config.epochs)")
        return {"type": "cosine", "min_lr_ratio": d.get("alpha", 0.0)}
    if "exponential_decay" in tao:
        d = tao["exponential_decay"] if isinstance(tao["exponential_decay"], dict) else {}
        if "decay_steps" in d:  # TAO's are optimiser steps: read as epochs, 1000 of them would never decay
            ignored.append(f"{where}.exponential_decay.decay_steps (TAO counts optimiser steps; here the rate "
                           f"is multiplied by decay_rate every {where}.step_size epochs, default 10)")
        return {"type": "step", "gamma": d.get("decay_rate", 0.1)}
    return tao


def _data_sources(section: dict[str, Any], source: str) -> None:
    """TAO's train/val/test_data_sources { data_source { image_path masks_path } } -> *_images/masks_path."""
    for split in ("train", "val", "test"):
        key = f"{split}_data_sources"
        if key not in section:
            continue
        block = section.pop(key)
        entries = block.get("data_source", []) if isinstance(block, dict) else []
        where = f"{source}: dataset_config.{key}"
        if len(entries) != 1 or not isinstance(entries[0], dict):
            raise SpecError(f"{where}: give one data_source {{ image_path masks_path }} (got {len(entries)}); "
                            f"floodwatch reads one images folder and one masks folder per split")
        for tao_name, ours in (("image_path", f"{split}_images_path"), ("masks_path", f"{split}_masks_path")):
            if tao_name in entries[0]:
                if section.get(ours):
                    raise SpecError(f"{where}: dataset_config.{ours} is given too; give one of them")
                section[ours] = entries[0][tao_name]


def _move(out: dict[str, Any], section: str, name: str, val: Any, target: tuple[str, str],
          ignored: list[str]) -> None:
    """A TAO field whose counterpart lives under another name: moved there, unless that is given too."""
    there = out.setdefault(target[0], {})
    if not isinstance(there, dict):
        return
    if target[1] in there:
        ignored.append(f"{section + '.' if section else ''}{name} ({'.'.join(target)} is given)")
    else:
        there[target[1]] = val


def tao_to_dict(text: str, source: str = "spec", ignored: list[str] | None = None) -> dict[str, Any]:
    """TAO protobuf text -> a dict `floodwatch.config.spec_from_dict` validates. `ignored` collects what was
    dropped, each as "section.field (why)"."""
    lines: dict[tuple[str, ...], int] = {}
    raw = parse_text_proto(text, source, lines)
    ignored = ignored if ignored is not None else []
    out = TaoDict()
    out.lines = lines
    later: list[tuple[str, str, Any, tuple[str, str]]] = []  # moved after every section is read
    for key, val in raw.items():
        if key == "random_seed":  # top level in TAO, a training setting here
            out.setdefault("training_config", {})["random_seed"] = val
            continue
        if key in IGNORED[""]:
            ignored.append(f"{key} ({IGNORED[''][key]})")
            continue
        if key in RENAMED[""]:
            later.append(("", key, val, RENAMED[""][key]))
            continue
        if key not in ("dataset_config", "model_config", "training_config") or not isinstance(val, dict):
            out[key] = val  # left for validation to reject by name
            continue
        section = dict(out.get(key, {}))
        for name, v in val.items():
            if name in IGNORED.get(key, {}):
                ignored.append(f"{key}.{name} ({IGNORED[key][name]})")
            elif name in RENAMED.get(key, {}):
                later.append((key, name, v, RENAMED[key][name]))
            else:
                section[name] = v
        out[key] = section
    for section, name, val, target in later:
        _move(out, section, name, val, target, ignored)
    tc = out.get("training_config", {})
    if "use_amp" in tc:  # TAO's mixed precision: float16 AMP on CUDA is our 'auto'
        amp = tc.pop("use_amp")
        if "precision" in tc:
            ignored.append("training_config.use_amp (training_config.precision is given)")
        elif isinstance(amp, bool):
            tc["precision"] = "auto" if amp else "float32"
        else:
            raise SpecError(f"{source}: training_config.use_amp: expected true or false, got {amp!r}")
    if "lr_scheduler" in tc:
        tc["lr_scheduler"] = _scheduler(tc["lr_scheduler"], ignored)
    opt = tc.get("optimizer")
    if isinstance(opt, dict) and "adam" not in opt and opt:
        raise SpecError(f"{source}: training_config.optimizer: only adam is supported, got {', '.join(opt)}")
    ds = out.get("dataset_config", {})
    if isinstance(ds, dict):
        _data_sources(ds, source)
    dcc = ds.get("data_class_config") if isinstance(ds, dict) else None
    if isinstance(dcc, dict) and isinstance(dcc.get("target_classes"), dict):
        dcc["target_classes"] = [dcc["target_classes"]]
    return out
