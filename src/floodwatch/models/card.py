"""The model card of a registered model: `card.json` beside its weights (format in docs/models.md), checked
with pydantic and rendered as Markdown for `floodwatch models info`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ModelError

FileKind = Literal["checkpoint", "onnx"]
SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key in a card is an error, not silently dropped


class CardFile(_Strict):
    path: str = Field(description="File name, relative to the card's folder.")
    sha256: str = Field(pattern=SHA256)
    precision: Literal["fp32", "fp16", "int8"]


class DataSource(_Strict):
    name: str
    licence: str
    url: Optional[str] = None
    use: str = Field(description="What the model took from it, e.g. 'training (hand labels)'.")


class LeaveOneEventOutRow(_Strict):
    """One fold: a model trained without this event, scored on it (not the shipped model)."""
    held_out: str
    chips: Optional[int] = None
    model_water_iou: float = Field(ge=0, le=1)
    otsu_water_iou: float = Field(ge=0, le=1)


class ReproduceRow(_Strict):
    """A figure of the shipped model that anyone with ../shared/data can reproduce (checked by a test)."""
    dataset: str = Field(description="Folder relative to shared/data.")
    format: Optional[str] = None
    split: Optional[str] = None
    file: FileKind = "checkpoint"
    metric: Literal["water_iou", "f1", "precision", "recall"] = "water_iou"
    value: float = Field(ge=0, le=1)
    otsu: Optional[float] = Field(default=None, ge=0, le=1)


class Evaluation(_Strict):
    protocol: str
    threshold: float = Field(default=0.5, gt=0, lt=1)
    leave_one_event_out: list[LeaveOneEventOutRow] = []
    reproduce: list[ReproduceRow] = []


class InputSpec(_Strict):
    bands: list[str]
    units: str
    pixel_size_m: float = Field(gt=0)
    products: list[str]
    linear_power: str = Field(description="What happens when linear power is given instead of dB.")


class Card(_Strict):
    format_version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str
    summary: str
    architecture: str
    licence: str
    files: dict[FileKind, CardFile]
    training_data: list[DataSource]
    recipe: str = Field(description="Example spec the model was trained with (path in the repository).")
    evaluation: Evaluation
    input: InputSpec
    intended_use: str
    failure_modes: list[str]


def read_card(path: str | Path) -> Card:
    """The card at `path`; ModelError naming the file and the first bad field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable model card ({type(exc).__name__}: {exc})") from None
    try:
        card = Card.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ModelError(f"{path}: {field}: {err['msg']}") from None
    if "checkpoint" not in card.files:
        raise ModelError(f"{path}: files.checkpoint: missing (every model ships its fp32 checkpoint)")
    if card.name != path.parent.name:
        raise ModelError(f"{path}: name: '{card.name}' differs from its folder '{path.parent.name}'")
    return card


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                            for r in rows]


def card_markdown(card: Card, *, default: bool = False) -> str:
    """The card as Markdown: what it is, inputs, data and licences, recipe, figures beside Otsu, use, failures."""
    ev, inp = card.evaluation, card.input
    out = [f"# {card.name} {card.version}" + (" (default model)" if default else ""), "", card.summary, "",
           f"**Architecture:** {card.architecture}  ", f"**Licence:** {card.licence}  ",
           "**Files:** " + ", ".join(f"{k} `{f.path}` ({f.precision})" for k, f in card.files.items()), "",
           "## Input", "", f"- bands: {', '.join(inp.bands)} in {inp.units}", f"- pixel size: {inp.pixel_size_m:g} m",
           f"- products: {', '.join(inp.products)}", f"- linear power: {inp.linear_power}", "",
           "## Training data", ""]
    out += _table(["data", "licence", "used for"], [[f"[{d.name}]({d.url})" if d.url else d.name, d.licence, d.use]
                                                   for d in card.training_data])
    out += ["", f"**Recipe:** `{card.recipe}`", "", "## Accuracy", "", ev.protocol, ""]
    if ev.leave_one_event_out:
        out += ["Leave one event out (water IoU; each row a model trained without that event):", ""]
        rows = ev.leave_one_event_out
        counted = any(r.chips is not None for r in rows)  # no column that no row fills
        table = [[r.held_out, *(["" if r.chips is None else str(r.chips)] if counted else []),
                  f"{r.model_water_iou:.3f}", f"{r.otsu_water_iou:.3f}"] for r in rows]
        if len(rows) > 1:  # the one figure a reader compares recipes and baselines by (docs/benchmarks.md's)
            table.append([f"**mean of {len(rows)} events**", *([""] if counted else []),
                          f"{sum(r.model_water_iou for r in rows) / len(rows):.3f}",
                          f"{sum(r.otsu_water_iou for r in rows) / len(rows):.3f}"])
        out += _table(["held-out event", *(["chips"] if counted else []), "model", "Otsu"], table)
        out.append("")
    if ev.reproduce:
        out += [f"This model (threshold {ev.threshold:g}), reproducible on the data named:", ""]
        out += _table(["data", "split", "file", "metric", "model", "Otsu"],
                      [[r.dataset, r.split or "all", r.file, r.metric, f"{r.value:.3f}",
                        "" if r.otsu is None else f"{r.otsu:.3f}"] for r in ev.reproduce])
        out.append("")
    out += ["## Intended use", "", card.intended_use, "", "## Known failure modes", ""]
    out += [f"- {f}" for f in card.failure_modes]
    return "\n".join(out) + "\n"
