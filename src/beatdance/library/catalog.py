"""The library's metadata table (SQLite): one row per indexed clip, row number = vector-index id.

Columns: the clip id and its group (the pair it came from), the music and dance source files, the
dance kind (video, keypoints, dwm), the time spans in each file (seconds), both tempos (BPM) and both
beat lists (JSON, seconds from the window start). SQLite keeps the table queryable by other tools
(``sqlite3 LIB/meta.sqlite 'select * from items'``) and needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, overload

from ..errors import CheckpointError, ParameterError

_COLUMNS = (
    "clip_id",
    "grp",
    "music_file",
    "dance_file",
    "dance_kind",
    "start_s",
    "music_start_s",
    "duration_s",
    "music_tempo_bpm",
    "dance_tempo_bpm",
    "music_beats_s",
    "dance_beats_s",
)
_SCHEMA = """CREATE TABLE items (
    row INTEGER PRIMARY KEY, clip_id TEXT UNIQUE NOT NULL, grp TEXT NOT NULL, music_file TEXT, dance_file TEXT,
    dance_kind TEXT, start_s REAL, music_start_s REAL, duration_s REAL, music_tempo_bpm REAL, dance_tempo_bpm REAL,
    music_beats_s TEXT NOT NULL, dance_beats_s TEXT NOT NULL)"""


class Side(NamedTuple):
    """One modality of an item: its file, where the clip starts in it (s), its tempo (BPM) and beats (s)."""

    file: str | None
    start_s: float | None
    tempo_bpm: float | None
    beats_s: list[float]


@dataclass
class Item:
    """One indexed clip. ``start_s`` is the dance file time of the window, ``music_start_s`` the music file time."""

    row: int
    clip_id: str
    grp: str
    music_file: str | None
    dance_file: str | None
    dance_kind: str | None
    start_s: float | None
    music_start_s: float | None
    duration_s: float | None
    music_tempo_bpm: float | None
    dance_tempo_bpm: float | None
    music_beats_s: list[float] = field(default_factory=list)
    dance_beats_s: list[float] = field(default_factory=list)

    @classmethod
    def from_store(
        cls, *, row: int, clip_id: str, meta: dict[str, Any], music_beats_s: list[float], dance_beats_s: list[float]
    ) -> Item:
        """An item from a feature-store clip's metadata (missing fields stay None)."""
        return cls(
            row=row,
            clip_id=clip_id,
            grp=str(meta.get("group", clip_id)),
            music_file=meta.get("music_file"),
            dance_file=meta.get("dance_file"),
            dance_kind=meta.get("dance_kind"),
            start_s=meta.get("start_s"),
            music_start_s=meta.get("music_start_s"),
            duration_s=meta.get("duration_s"),
            music_tempo_bpm=meta.get("music_tempo_bpm"),
            dance_tempo_bpm=meta.get("dance_tempo_bpm"),
            music_beats_s=[float(t) for t in music_beats_s],
            dance_beats_s=[float(t) for t in dance_beats_s],
        )

    def side(self, modality: str) -> Side:
        """The ``modality`` ("music" or "dance") of this item."""
        if modality == "music":
            return Side(self.music_file, self.music_start_s, self.music_tempo_bpm, self.music_beats_s)
        return Side(self.dance_file, self.start_s, self.dance_tempo_bpm, self.dance_beats_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_catalog(path: str | os.PathLike[str], items: list[Item]) -> None:
    """Write a new table of ``items`` (rows must be 0..n-1 in order) to ``path``."""
    assert all(it.row == i for i, it in enumerate(items)), "catalog rows must be the index ids 0..n-1"
    path = Path(path)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute(_SCHEMA)
        rows = [
            (
                it.row,
                *(json.dumps(v) if k.endswith("_beats_s") else v for k, v in ((c, getattr(it, c)) for c in _COLUMNS)),
            )
            for it in items
        ]
        con.executemany(
            f"INSERT INTO items (row, {', '.join(_COLUMNS)}) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})", rows
        )
        con.commit()
    finally:
        con.close()


def _item(row: tuple[Any, ...]) -> Item:
    values = dict(zip(("row", *_COLUMNS), row, strict=True))
    values["music_beats_s"] = json.loads(values["music_beats_s"])
    values["dance_beats_s"] = json.loads(values["dance_beats_s"])
    return Item(**values)


class Catalog(Sequence[Item]):
    """The items of a library's table, read when asked for: opening reads only the row count (a million rows
    decoded up front took seconds), an item is decoded once, when first asked for, and kept.
    ``catalog[i]``, ``catalog[a:b]``, iteration and ``rows([...])`` (one query for many rows) give Items;
    ``column(name)`` one column of every row, in row order. One read-only connection, opened with the catalog,
    serves every read (under a lock, from any thread), so the rows stay readable after a newer version of the
    library replaced the folder they came from, as its memory-mapped files do."""

    _BATCH = 500  # rows per ``IN (...)`` query (SQLite allows 999 parameters in older builds)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(
                f"the library's metadata table {self.path} is missing; rebuild the library with `beatdance index`."
            )
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        count, low, high = self._query("SELECT COUNT(*), MIN(row), MAX(row) FROM items")[0]
        if count and (low, high) != (0, count - 1):  # rows are unique (the primary key): no gap iff 0..count-1
            raise CheckpointError(f"{self.path} has gaps in its rows; rebuild the library with `beatdance index`.")
        self._len = int(count)
        self._items: dict[int, Item] = {}

    def _unreadable(self, exc: Exception) -> CheckpointError:
        return CheckpointError(
            f"{self.path} is not a readable library table ({exc}); rebuild the library with `beatdance index`."
        )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._con.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> Item: ...

    @overload
    def __getitem__(self, i: slice) -> list[Item]: ...

    def __getitem__(self, i: int | slice) -> Item | list[Item]:
        if isinstance(i, slice):
            return self.rows(range(*i.indices(self._len)))
        row = operator.index(i) + (self._len if i < 0 else 0)
        if not 0 <= row < self._len:
            raise IndexError(f"row {i} of a catalog of {self._len} items")
        return self.rows([row])[0]

    def __iter__(self) -> Iterator[Item]:
        for a in range(0, self._len, self._BATCH):
            yield from self.rows(range(a, min(self._len, a + self._BATCH)))

    def rows(self, rows: Sequence[int]) -> list[Item]:
        """The items of ``rows`` (in that order), reading the ones not yet decoded in batched queries."""
        missing = sorted({int(r) for r in rows} - self._items.keys())
        for a in range(0, len(missing), self._BATCH):
            part = missing[a : a + self._BATCH]
            sql = f"SELECT row, {', '.join(_COLUMNS)} FROM items WHERE row IN ({', '.join('?' * len(part))})"
            self._items.update((r[0], _item(r)) for r in self._query(sql, part))
        return [self._items[int(r)] for r in rows]

    def column(self, name: str) -> list[Any]:
        """Column ``name`` (e.g. ``clip_id``, ``grp``) of every row, in row order."""
        if name not in _COLUMNS:
            raise ParameterError(f"no column {name!r} in the catalog; expected one of {', '.join(_COLUMNS)}.")
        return [r[0] for r in self._query(f"SELECT {name} FROM items ORDER BY row")]


def read_catalog(path: str | os.PathLike[str]) -> list[Item]:
    """Every item of the table at ``path``, by row."""
    return list(Catalog(path))
