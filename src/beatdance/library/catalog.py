"""The library's metadata table (SQLite): one row per indexed clip, row number = vector-index id.

Columns: the clip id and its group (the pair it came from), the music and dance source files, the
dance kind (video, keypoints, dwm), the time spans in each file (seconds), both tempos (BPM) and both
beat lists (JSON, seconds from the window start). SQLite keeps the table queryable by other tools
(``sqlite3 LIB/meta.sqlite 'select * from items'``) and needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import CheckpointError

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


def read_catalog(path: str | os.PathLike[str]) -> list[Item]:
    """Every item of the table at ``path``, by row."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"the library's metadata table {path} is missing; rebuild the library with `beatdance index`."
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(f"SELECT row, {', '.join(_COLUMNS)} FROM items ORDER BY row").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CheckpointError(
            f"{path} is not a readable library table ({exc}); rebuild the library with `beatdance index`."
        ) from exc
    items = []
    for r in rows:
        values = dict(zip(("row", *_COLUMNS), r, strict=True))
        values["music_beats_s"] = json.loads(values["music_beats_s"])
        values["dance_beats_s"] = json.loads(values["dance_beats_s"])
        items.append(Item(**values))
    if any(it.row != i for i, it in enumerate(items)):
        raise CheckpointError(f"{path} has gaps in its rows; rebuild the library with `beatdance index`.")
    return items
