"""ChipDataset: a lazy `Sequence[Sample]` over an index of records built by a source reader."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, overload

from ..errors import DataError
from .sample import Sample


@dataclass(frozen=True)
class Record:
    """What a reader needs to load one chip later: its id, region, split and file paths."""

    id: str
    region: str
    paths: dict[str, Path | None]
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChipDataset(Sequence):
    """Chips of one source; files are read on `__getitem__`, never at construction."""

    def __init__(self, records: Iterable[Record], loader: Callable[[Record], Sample], *, format: str,
                 root: Path, bands: tuple[str, ...]) -> None:
        self.records: list[Record] = list(records)
        self._loader = loader
        self.format, self.root, self.bands = format, Path(root), tuple(bands)
        self._index = {r.id: i for i, r in enumerate(self.records)}
        if len(self._index) != len(self.records):
            dup = next(r.id for i, r in enumerate(self.records) if self._index[r.id] != i)
            raise DataError(f"{root}: chip id '{dup}' occurs twice")

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def regions(self) -> list[str]:
        return [r.region for r in self.records]

    @property
    def splits(self) -> list[str | None]:
        """The split each chip belongs to in the source's own lists (None where the source has none)."""
        return [r.split for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> "ChipDataset": ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._with(self.records[i])
        return self._loader(self.records[i])

    def get(self, chip_id: str) -> Sample:
        if chip_id not in self._index:
            raise DataError(f"{self.root}: no chip with id '{chip_id}'")
        return self[self._index[chip_id]]

    def subset(self, ids: Iterable[str]) -> "ChipDataset":
        """The chips with these ids, in the given order (unknown ids are an error)."""
        ids = list(ids)
        missing = [i for i in ids if i not in self._index]
        if missing:
            raise DataError(f"{self.root}: {len(missing)} id(s) not in the data set, e.g. '{missing[0]}'")
        return self._with([self.records[self._index[i]] for i in ids])

    def check_regions(self, names: Iterable[str], what: str) -> None:
        """DataError "<what> has no region 'X' (it has ...)" for a name none of the chips' regions is: a
        misspelt event in a region list would otherwise be silently kept (or trained on)."""
        unknown = sorted(set(names) - set(self.regions))
        if unknown:
            raise DataError(f"{what} has no region '{unknown[0]}' (it has {', '.join(sorted(set(self.regions)))})")

    def _with(self, records: list[Record]) -> "ChipDataset":
        return ChipDataset(records, self._loader, format=self.format, root=self.root, bands=self.bands)

    def __repr__(self) -> str:
        return f"ChipDataset(format={self.format!r}, root='{self.root}', chips={len(self)}, bands={self.bands})"
