"""Registered models and the one rule for what a model reference means (`resolve_model`).

A registered model is a folder `<zoo>/<name>/` holding `card.json` (docs/models.md) and the files it lists
(an fp32 checkpoint, usually an INT8 ONNX too), each pinned by sha256. The zoo is the package's
`models/zoo/` folder, or $FLOODWATCH_ZOO when set. DEFAULT_MODEL is what commands use without a model."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError, NoDefaultModelError
from .card import Card, FileKind, read_card
from .download import fetch_model, is_url, sha256_file

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
DEFAULT_MODEL = "floodwatch-s1"
CARD = "card.json"


def zoo_dir() -> Path:
    return Path(os.environ["FLOODWATCH_ZOO"]).expanduser() if os.environ.get("FLOODWATCH_ZOO") else ZOO_DIR


@dataclass(frozen=True)
class ZooModel:
    name: str
    folder: Path
    card: Card

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_MODEL

    def file(self, kind: FileKind) -> Path:
        """The checkpoint or ONNX file, present and matching its card's sha256 (else ModelError)."""
        entry = self.card.files.get(kind)
        if entry is None:
            raise ModelError(f"model {self.name}: its card lists no {kind} file")
        path = self.folder / entry.path
        if not path.is_file():
            raise ModelError(f"model {self.name}: {path} is missing (reinstall floodwatch or the model)")
        if _sha256(path, path.stat().st_mtime_ns, path.stat().st_size) != entry.sha256:
            raise ModelError(f"model {self.name}: {path} does not match the sha256 in its card (damaged or replaced)")
        return path


    def file_problems(self) -> list[str]:
        """What `file` would refuse, for each file of the card: missing, or not matching its sha256."""
        problems = []
        for kind in self.card.files:
            try:
                self.file(kind)
            except ModelError as exc:
                problems.append(str(exc))
        return problems


@lru_cache(maxsize=16)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_file(path)  # once per process and file version: several commands may resolve one model


def list_models(problems: list[str] | None = None) -> list[ZooModel]:
    """Every registered model (folders of the zoo with a card.json), by name. A bad card raises ModelError, or,
    with a `problems` list, is appended there (naming the file and field) and left out, so one damaged model
    does not hide the others."""
    root = zoo_dir()
    if not root.is_dir():
        return []
    models = []
    for card_path in sorted(root.glob(f"*/{CARD}")):
        try:
            models.append(ZooModel(card_path.parent.name, card_path.parent, read_card(card_path)))
        except ModelError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    return models


def get_model(name: str | None = None) -> ZooModel:
    """A registered model by name; None: the default model (NoDefaultModelError when absent)."""
    if name is not None and not name.strip():
        raise ModelError("model: an empty name (leave it out for the default model)")
    wanted = name or DEFAULT_MODEL
    card_path = zoo_dir() / wanted / CARD
    if "/" in wanted or "\\" in wanted or not card_path.is_file():
        if name is None:
            raise NoDefaultModelError(f"no default model installed ({DEFAULT_MODEL}: no {card_path})")
        known = ", ".join(m.name for m in list_models(problems=[])) or "none installed"
        raise ModelError(f"model '{name}': not a registered model (registered: {known})")
    return ZooModel(wanted, card_path.parent, read_card(card_path))


def kind_for_backend(backend: str | None) -> FileKind:
    """Which file of a registered model a back-end runs: ONNX (INT8, fast on CPU) for auto and onnx."""
    return "checkpoint" if backend == "torch" else "onnx"


def resolve_model(ref: str | os.PathLike | None, kind: FileKind = "checkpoint") -> Path:
    """What a model reference means, for every command:

    - None: the default model's `kind` file (its checkpoint if it ships no ONNX and ONNX was asked for);
    - a file (a path with a folder or a model suffix, or anything that exists): itself;
    - a registered name: that model's `kind` file (the same fallback);
    - 'https://.../file#sha256=HEX': the file, downloaded once into cache_dir() and verified.
    """
    if ref is not None and not isinstance(ref, str):
        ref = os.fspath(ref)
    if ref is not None and is_url(ref):
        return fetch_model(ref)
    if ref is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", ref):  # a path would fold '//' into '/'
        raise ModelError(f"model '{ref}': only http:// and https:// URLs are downloaded (with #sha256=HEX)")
    if ref is not None and not ref.strip():
        raise ModelError("model: an empty name (leave it out for the default model)")
    if ref is not None and (Path(ref).expanduser().exists() or not _looks_like_name(ref)):
        return Path(ref).expanduser()  # a missing file is reported by the loader, as for any input file
    model = get_model(ref)
    return model.file(kind if kind in model.card.files else "checkpoint")


def _looks_like_name(ref: str) -> bool:
    # 'runs/x/best.pt' that does not exist is a missing file, not an unknown model name
    return "/" not in ref and "\\" not in ref and Path(ref).suffix.lower() not in (".pt", ".pth", ".onnx", ".plan")
