"""Finding music/dance pairs among the paths given to ``beatdance prepare``.

Accepted inputs:

* a dance video with its own soundtrack (``.mp4 .mkv .webm .mov``): music = its audio track;
* a manifest CSV with columns ``music,dance[,offset_s]``: a music file paired with a dance video or a
  keypoint file (NPZ, CSV, AIST++ ``.pkl``); ``offset_s`` is the music time (s) that plays at dance time 0;
* a Dance-with-Melody folder (``skeletons.json.gz`` + ``config.json`` + ``audio.mp3``), or a folder of them;
* a folder: searched recursively for all of the above (a folder that has a ``manifest.csv`` uses it), where
  a music file and a keypoint file or video with the same name (``x.wav`` + ``x.npz``) also make a pair,
  at offset 0.

Anything else is reported as skipped with the reason.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".mov"}
AUDIO_EXTS = {".wav", ".mp3", ".ogg", ".flac", ".m4a"}
KEYPOINT_EXTS = {".npz", ".pkl", ".csv"}


@dataclass(frozen=True)
class PairSpec:
    """One music/dance pair to cut into windows. ``dance_kind`` is "video", "keypoints" or "dwm"."""

    pair_id: str
    music: str
    dance: str
    dance_kind: str
    offset_s: float = 0.0


@dataclass(frozen=True)
class Rejected:
    """An input that is not a pair, with the reason."""

    input: str
    reason: str


def _content_key(path: Path) -> str:
    """What identifies a media file wherever it lives: its size and a hash of its first MiB (a missing file:
    its path, so that the pair is still listed and then reported as unreadable)."""
    try:
        with open(path, "rb") as fh:
            return f"{path.stat().st_size}:{hashlib.sha1(fh.read(1 << 20)).hexdigest()}"
    except OSError:
        return str(path.resolve())


def _pair_id(path: Path, *also: object) -> str:
    """Readable, unique id: the dance file's stem plus a hash of its content and any pairing details.

    Ids do not depend on where the media is stored, so splits (made from ids) are the same on every machine.
    """
    digest = hashlib.sha1(repr((_content_key(path), *also)).encode()).hexdigest()[:6]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)
    return f"{stem}-{digest}"


def is_dwm_folder(path: Path) -> bool:
    return (path / "skeletons.json.gz").is_file() and (path / "config.json").is_file()


def is_pair_manifest(path: Path) -> bool:
    """True if the CSV's header has ``music`` and ``dance`` columns."""
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return {"music", "dance"} <= {h.strip() for h in header}


def read_manifest(path: Path) -> tuple[list[PairSpec], list[Rejected]]:
    """Pairs listed in a manifest CSV; relative paths are relative to the manifest's folder."""
    pairs: list[PairSpec] = []
    rejected: list[Rejected] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"music", "dance"} <= set(reader.fieldnames):
            return [], [
                Rejected(
                    str(path),
                    f"CSV header {reader.fieldnames} has no 'music' and 'dance' columns; "
                    "a manifest needs the header music,dance[,offset_s]",
                )
            ]
        for line, row in enumerate(reader, start=2):
            music, dance = (path.parent / row["music"]), (path.parent / row["dance"])
            try:
                offset = float(row.get("offset_s") or row.get("offset") or 0.0)
            except ValueError:
                rejected.append(
                    Rejected(f"{path}:{line}", f"offset {row.get('offset_s')!r} is not a number of seconds")
                )
                continue
            ext = dance.suffix.lower()
            kind = "video" if ext in VIDEO_EXTS else "dwm" if dance.is_dir() and is_dwm_folder(dance) else "keypoints"
            pairs.append(
                PairSpec(
                    pair_id=_pair_id(dance, _content_key(music), offset),
                    music=str(music),
                    dance=str(dance),
                    dance_kind=kind,
                    offset_s=offset,
                )
            )
    return pairs, rejected


def same_stem_pairs(files: list[Path]) -> list[tuple[PairSpec, tuple[Path, Path]]]:
    """Pairs of one music file and one dance file (keypoints or a video) sharing a name in one folder."""
    by_stem: dict[str, dict[str, list[Path]]] = {}
    for f in files:
        ext = f.suffix.lower()
        role = "music" if ext in AUDIO_EXTS else "dance" if ext in KEYPOINT_EXTS | VIDEO_EXTS else None
        if role and f.is_file():
            by_stem.setdefault(f.stem, {}).setdefault(role, []).append(f)
    out = []
    for roles in by_stem.values():
        if len(roles.get("music", [])) == 1 and len(roles.get("dance", [])) == 1:
            music, dance = roles["music"][0], roles["dance"][0]
            kind = "video" if dance.suffix.lower() in VIDEO_EXTS else "keypoints"
            spec = PairSpec(
                pair_id=_pair_id(dance, _content_key(music), 0.0), music=str(music), dance=str(dance), dance_kind=kind
            )
            out.append((spec, (music, dance)))
    return out


def discover_pairs(paths: list[str | os.PathLike[str]]) -> tuple[list[PairSpec], list[Rejected]]:
    """All pairs under ``paths`` (sorted by id, duplicates removed) and the inputs that are not pairs."""
    pairs: dict[str, PairSpec] = {}
    rejected: list[Rejected] = []

    def visit(path: Path, *, top: bool) -> None:
        if not path.exists():
            rejected.append(Rejected(str(path), "no such file or folder"))
        elif path.is_dir():
            if is_dwm_folder(path):
                spec = PairSpec(pair_id=path.name, music=str(path / "audio.mp3"), dance=str(path), dance_kind="dwm")
                pairs.setdefault(spec.pair_id, spec)
            elif (path / "manifest.csv").is_file() and is_pair_manifest(path / "manifest.csv"):
                found, bad = read_manifest(path / "manifest.csv")
                rejected.extend(bad)
                for spec in found:
                    pairs.setdefault(spec.pair_id, spec)
            else:
                children = [c for c in sorted(path.iterdir()) if not c.name.startswith(".")]
                for spec, used in same_stem_pairs(children):
                    pairs.setdefault(spec.pair_id, spec)
                    children = [c for c in children if c not in used]
                for child in children:
                    visit(child, top=False)
        else:
            ext = path.suffix.lower()
            if ext in VIDEO_EXTS:
                spec = PairSpec(pair_id=_pair_id(path), music=str(path), dance=str(path), dance_kind="video")
                pairs.setdefault(spec.pair_id, spec)
            elif ext == ".csv" and top:
                found, bad = read_manifest(path)
                rejected.extend(bad)
                for spec in found:
                    pairs.setdefault(spec.pair_id, spec)
            elif top or ext not in AUDIO_EXTS | KEYPOINT_EXTS | {".json", ".txt", ".md", ".gz", ".png"}:
                reason = (
                    "a music file alone has no dance: pair it with one in a manifest CSV (music,dance,offset_s)"
                    if ext in AUDIO_EXTS
                    else "keypoints alone have no music: pair them with a music file in a manifest CSV"
                    if ext in KEYPOINT_EXTS
                    else f"unknown format {ext or '(no extension)'!r}: expected a video ({', '.join(sorted(VIDEO_EXTS))}), "
                    "a manifest CSV or a Dance-with-Melody folder"
                )
                rejected.append(Rejected(str(path), reason))

    for p in paths:
        visit(Path(p), top=True)
    return [pairs[k] for k in sorted(pairs)], rejected
