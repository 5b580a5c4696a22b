"""TAO's UNet spec (protobuf text format) -> floodwatch's spec dict.

No .proto schema is needed: protobuf text is `name: value` and `name { ... }`, a field given twice is
repeated. The fields TAO always treats as repeated (target_classes, freeze_blocks) become lists
even when given once. The few TAO-only settings that have no meaning here are dropped and reported.
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

REPEATED = {"target_classes", "freeze_blocks"}

#: TAO settings with no counterpart here (TensorFlow / TAO-runtime specifics): dropped, and listed.
IGNORED = {
    "dataset_config": {"resize_padding", "resize_method", "buffer_size", "filter_data", "load_graph"},
    "model_config": {"load_graph", "byom_model", "enable_qat", "dropout_rate"},
    "training_config": {"visualizer", "data_options", "loss_scale"},
}


def parse_text_proto(text: str, source: str = "spec") -> dict[str, Any]:
    """Protobuf text format -> nested dicts; repeated fields -> lists."""
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

    def message(close: str | None) -> dict[str, Any]:
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
            name = tok
            i += 1
            if tokens[i][1] == ":":
                i += 1
            kind, tok, _ = tokens[i]
            if tok in ("{", "<"):
                i += 1
                val: Any = message("}" if tok == "{" else ">")
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
                out.setdefault(name, []).extend(val)
                continue
            else:
                val = value(tokens[i])
                i += 1
            if name in REPEATED:
                out.setdefault(name, []).append(val)
            elif name in repeated:
                out[name].append(val)
            elif name in out:  # a second occurrence: the field is repeated
                out[name] = [out[name], val]
                repeated.add(name)
            else:
                out[name] = val

    return message(None)


def _scheduler(tao: Any) -> Any:
    """TAO's lr_scheduler { cosine_decay {...} } / { exponential_decay {...} } -> ours."""
    if not isinstance(tao, dict):
        return tao
    if "cosine_decay" in tao:
        alpha = tao["cosine_decay"].get("alpha", 0.0) if isinstance(tao["cosine_decay"], dict) else 0.0
        return {"type": "cosine", "min_lr_ratio": alpha}
    if "exponential_decay" in tao:
        d = tao["exponential_decay"] if isinstance(tao["exponential_decay"], dict) else {}
        return {"type": "step", "step_size": max(1, int(d.get("decay_steps", 10))),
                "gamma": d.get("decay_rate", 0.1)}
    return tao


def tao_to_dict(text: str, source: str = "spec", ignored: list[str] | None = None) -> dict[str, Any]:
    """TAO protobuf text -> a dict `floodwatch.config.spec_from_dict` validates. `ignored` collects what was dropped."""
    raw = parse_text_proto(text, source)
    ignored = ignored if ignored is not None else []
    out: dict[str, Any] = {}
    for key, val in raw.items():
        if key == "random_seed":  # top level in TAO, a training setting here
            out.setdefault("training_config", {})["random_seed"] = val
            continue
        if key not in ("dataset_config", "model_config", "training_config") or not isinstance(val, dict):
            out[key] = val  # left for validation to reject by name
            continue
        section = dict(out.get(key, {}), **val)
        for name in IGNORED.get(key, ()):
            if name in section:
                section.pop(name)
                ignored.append(f"{key}.{name}")
        out[key] = section
    tc = out.get("training_config", {})
    if "lr_scheduler" in tc:
        tc["lr_scheduler"] = _scheduler(tc["lr_scheduler"])
    opt = tc.get("optimizer")
    if isinstance(opt, dict) and "adam" not in opt and opt:
        raise SpecError(f"{source}: training_config.optimizer: only adam is supported, got {', '.join(opt)}")
    ds = out.get("dataset_config", {})
    dcc = ds.get("data_class_config")
    if isinstance(dcc, dict) and isinstance(dcc.get("target_classes"), dict):
        dcc["target_classes"] = [dcc["target_classes"]]
    return out
