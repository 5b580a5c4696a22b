"""A rich progress bar over a dataset, shown only where someone is watching (a terminal)."""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None, show: bool | None = None) -> Iterator[T]:
    from rich.console import Console
    from rich.progress import track as rich_track

    console = Console(stderr=True)
    if show is None:
        show = console.is_terminal
    if not show:
        yield from items
        return
    yield from rich_track(items, description=description, total=total, console=console, transient=True)
