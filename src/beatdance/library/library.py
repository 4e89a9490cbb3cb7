"""A searchable library: every clip of a feature store embedded by a trained model, indexed per modality.

Layout of a library directory (written to a new version folder that a link swap puts in place, see
:func:`~beatdance.util.write_dir_atomically`: the path opens as the previous or the new library at every instant,
also while an ``index`` or ``--add`` is killed)::

    library.json              format, version, LibraryConfig, the model config, the store's extractor
                              settings (queries are extracted with them), item count
    model/                    a copy of the checkpoint (model.safetensors + config.json)
    meta.sqlite               one row per clip (``catalog``): files, time spans, tempos, beats
    embeddings.safetensors    per modality: fuse and beat-head embeddings (L2-normalised), beat grids
    music.faiss, dance.faiss  vector indexes of the fused embeddings (+ .json configs)
    querybank_m2d.safetensors QB-Norm statistics of the dance gallery for music queries (and d2m: the reverse)
    bank.safetensors          the querybank's embeddings when they come from a store split (not the library)

A music query searches the dance index ("m2d") and a dance query the music index ("d2m").
"""

from __future__ import annotations

import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..beats.music import track_music_beats
from ..errors import CheckpointError, DataError, ParameterError
from ..features.pooling import beat_slots, pool_segments
from ..media.limits import QueryLimits
from ..media.types import MediaClip
from ..model.config import BlenderConfig
from ..model.inference import NumpyBlender, TorchEncoder, embedding_dim, query_encoder
from ..pipeline.extract import get_encoder
from ..pipeline.prepare import PrepareConfig
from ..retrieval.hubness import load_querybank
from ..retrieval.index import VectorIndex, normalize_rows
from ..retrieval.scoring import Direction, ModalityEmbeddings
from ..retrieval.search import GallerySearch, Hits, SearchSettings
from ..threads import limited_threads
from ..util import read_json, resolve_dir
from .arrays import map_arrays
from .catalog import Catalog, Item
from .config import _GALLERY, FORMAT, VERSION, LibraryConfig, Modality, _arrays_to_embeddings
from .query import Match, SearchResult, extract_query_windows


class Library:
    """An opened library: ``Library.open(path).search(music="song.wav", top=10)``."""

    def __init__(
        self,
        path: Path,
        head: dict[str, Any],
        net: NumpyBlender | TorchEncoder,
        items: Catalog,
        arrays: dict[str, np.ndarray],
        searchers: dict[Direction, GallerySearch],
    ) -> None:
        self.path = path
        self.config = LibraryConfig.from_dict(head["config"])
        self.store_config: dict[str, Any] = head["store_config"]
        self.model = net  # embeds queries: numpy on the CPU (no torch import), torch on a GPU
        self.items = items  # read from the table as asked for
        self._arrays = arrays  # memory-mapped
        self._searchers = searchers

    @cached_property
    def ids(self) -> list[str]:
        """Every item's clip id, by row (read from the table when first asked for)."""
        return list(self.items.column("clip_id"))

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.ids)}

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> Library:
        """Open the library at ``path``; its files are checked against each other. Cheap: the embeddings are
        memory-mapped and the table's rows are read as searches need them (``Library.items`` is a Catalog)."""
        path = Path(path)
        root = resolve_dir(path)  # every file is read from the one version the path names now
        if not (root / "library.json").is_file():
            raise CheckpointError(
                f"{path} is not a beatdance library (no library.json). Build one with `beatdance index`."
            )
        head = read_json(root / "library.json")
        if head.get("format") != FORMAT or head.get("version") != VERSION:
            raise CheckpointError(
                f"{path}/library.json is format {head.get('format')!r} version {head.get('version')!r}; "
                f"this beatdance reads {FORMAT!r} version {VERSION}. Rebuild it with `beatdance index`."
            )
        net = query_encoder(root / "model", device=device)
        if net.config != BlenderConfig.from_dict(head["model"]):
            raise CheckpointError(
                f"{path}/model does not hold the model the library was built with; rebuild the library."
            )
        items = Catalog(root / "meta.sqlite")
        arrays = map_arrays(root / "embeddings.safetensors")
        dim = embedding_dim(net)
        searchers: dict[Direction, GallerySearch] = {}
        for modality, direction in _GALLERY.items():
            index = VectorIndex.load(root / f"{modality}.faiss", dim=dim)
            if len(index) != len(items) or len(arrays[f"{modality}_grid"]) != len(items):
                raise CheckpointError(
                    f"{path}: the {modality} index holds {len(index)} items but the table {len(items)}; "
                    "the library is inconsistent. Rebuild it with `beatdance index`."
                )
            searchers[direction] = GallerySearch(
                index=index,
                beat_head=arrays[f"{modality}_beat"],
                beat_grid=arrays[f"{modality}_grid"].astype(np.float32),
                direction=direction,
                querybank=load_querybank(root / f"querybank_{direction}.safetensors"),
            )
        lib = cls(path, head, net, items, arrays, searchers)
        for searcher in searchers.values():
            searcher.gallery_side(lib.config.search.sigma_frames)
        return lib

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._rows

    def item(self, clip_id: str) -> Item:
        """The item with id ``clip_id``."""
        if clip_id not in self._rows:
            raise ParameterError(
                f"clip {clip_id!r} is not in library {self.path} ({len(self)} items); "
                "Library.ids (or GET /api/items of `beatdance serve`) lists the ids."
            )
        return self.items[self._rows[clip_id]]

    def embeddings(self, modality: Modality, rows: np.ndarray | None = None) -> ModalityEmbeddings:
        """Stored embeddings of ``modality`` (all rows, or ``rows``)."""
        sel = np.arange(len(self)) if rows is None else np.asarray(rows)
        ids = [self.ids[i] for i in sel]
        groups = self.items.column("grp") if rows is None else [it.grp for it in self.items.rows(sel.tolist())]
        return _arrays_to_embeddings(
            {k: v[sel] for k, v in self._arrays.items() if k.startswith(modality)}, modality, ids, groups
        )

    def settings(self, **overrides: Any) -> SearchSettings:
        """The library's search settings with ``overrides`` (None values are ignored)."""
        return SearchSettings(
            **{**self.config.search.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
        )

    @cached_property
    def _prepare_config(self) -> PrepareConfig:
        """The extractor settings of the library's clips, which queries are extracted with."""
        return PrepareConfig.from_store_config(self.store_config, source=f"library {self.path}")

    def warm_up(self) -> None:
        """Track beats in and encode one synthetic music window, so that the first real query of a long-running
        process does not pay the first-call costs (lazy imports, FFT plans). No-op for libraries without
        extractor settings."""
        try:
            cfg = self._prepare_config
        except DataError:
            return
        sr = cfg.sr
        y = np.zeros(int(cfg.window_s * sr), dtype=np.float32)
        y[:: sr // 2] = 1.0  # a click every 0.5 s
        track_music_beats(y=y, sr=sr, config=cfg.music_beats)
        get_encoder(cfg.music_encoder, cfg.music_encoder_options, modality="music").encode(
            MediaClip(duration_s=cfg.window_s, audio=y, sr=sr, source="warm-up")
        )

    def _embed_windows(self, modality: Modality, windows: list[Any]) -> ModalityEmbeddings:
        cfg = self.model.config
        feats = np.stack([pool_segments(w.features, num_segments=cfg.num_segments) for w in windows])
        beats = np.stack(
            [beat_slots(w.beat_grid, num_segments=cfg.num_segments, slots=cfg.beat_slots) for w in windows]
        )
        rhythm = np.stack([w.rhythm for w in windows]) if cfg.uses_rhythm else None
        bars = np.array([w.beats_per_bar for w in windows])
        out = self.model.encode(modality, feats, beats, rhythm, beats_per_bar=bars)
        return ModalityEmbeddings(
            fuse=normalize_rows(out["fuse"]),
            beat_head=normalize_rows(out["beat"]),
            beat_grid=np.stack([w.beat_grid for w in windows]).astype(np.float32),
            ids=[f"window@{w.start_s:g}" for w in windows],
        )

    def extract_query(
        self,
        *,
        modality: Modality,
        path: str | os.PathLike[str],
        start_s: float = 0.0,
        duration_s: float | None = None,
        hop_s: float | None = None,
        limits: QueryLimits | None = None,
    ) -> tuple[ModalityEmbeddings, list[Any], Any]:
        """Windows of a query file extracted like the library's clips: (embeddings, windows, track); ``limits``
        as in :func:`extract_query_windows`."""
        windows, track = extract_query_windows(
            config=self._prepare_config,
            rhythm=self.model.config.uses_rhythm,
            modality=modality,
            path=path,
            start_s=start_s,
            duration_s=duration_s,
            hop_s=hop_s,
            limits=limits,
        )
        return self._embed_windows(modality, windows), windows, track

    def search(
        self,
        *,
        music: str | os.PathLike[str] | None = None,
        dance: str | os.PathLike[str] | None = None,
        music_id: str | None = None,
        dance_id: str | None = None,
        start_s: float = 0.0,
        duration_s: float | None = None,
        hop_s: float | None = None,
        top: int = 10,
        settings: SearchSettings | None = None,
        threads: int | None = 1,
        limits: QueryLimits | None = None,
    ) -> SearchResult:
        """Rank the library's dances for a music query (``music`` file or ``music_id`` of an item), or its
        music for a dance query. A file is cut into windows; the best-matching window is reported.

        One query is small work: ``threads`` (default 1) caps the BLAS, OpenMP and torch thread pools while
        it runs, because on a small machine idle pool threads mostly compete for the cores (a 10-s file
        query against 10k items: 75 ms with one thread against 880 ms with the default pools on a busy
        2-core machine, benchmarks/search_speed.py). None leaves the pools alone. ``limits`` (default
        ``QueryLimits()``) caps the duration, video pixels × frames and keypoint values of a query file, from its
        header before decoding and while decoding (LimitError).
        """
        with limited_threads(threads):
            return self._search(
                music=music,
                dance=dance,
                music_id=music_id,
                dance_id=dance_id,
                start_s=start_s,
                duration_s=duration_s,
                hop_s=hop_s,
                top=top,
                settings=settings,
                limits=limits,
            )

    def _search(
        self,
        *,
        music: str | os.PathLike[str] | None,
        dance: str | os.PathLike[str] | None,
        music_id: str | None,
        dance_id: str | None,
        start_s: float,
        duration_s: float | None,
        hop_s: float | None,
        top: int,
        settings: SearchSettings | None,
        limits: QueryLimits | None,
    ) -> SearchResult:
        t0 = time.perf_counter()
        given = {"music": music, "dance": dance, "music_id": music_id, "dance_id": dance_id}
        chosen = [k for k, v in given.items() if v is not None]
        if len(chosen) != 1:
            raise ParameterError(
                f"pass exactly one query (music, dance, music_id or dance_id); got {chosen or 'none'}."
            )
        if top < 1:
            raise ParameterError(f"top={top} must be >= 1.")
        key = chosen[0]
        modality: Modality = "music" if key.startswith("music") else "dance"
        settings = settings or self.settings()
        if key.endswith("_id"):
            item = self.item(str(given[key]))
            emb = self.embeddings(modality, np.array([self._rows[item.clip_id]]))
            side = item.side(modality)
            starts = [float(side.start_s or 0.0)]
            beat_lists = [side.beats_s]
            query = {"clip_id": item.clip_id, "modality": modality, "source": side.file, "tempo_bpm": side.tempo_bpm}
            span = item.duration_s
        else:
            path = str(given[key])
            emb, windows, track = self.extract_query(
                modality=modality, path=path, start_s=start_s, duration_s=duration_s, hop_s=hop_s, limits=limits
            )
            return self._rank_windows(
                modality,
                emb,
                windows,
                tempo_bpm=float(track.beats.tempo_bpm),
                file=path,
                start_s=start_s,
                top=top,
                settings=settings,
                t0=t0,
            )
        return self._ranked(
            modality,
            emb,
            query=query,
            starts=starts,
            beat_lists=beat_lists,
            span=span,
            top=top,
            settings=settings,
            t0=t0,
        )

    def search_windows(
        self,
        *,
        modality: Modality,
        windows: list[Any],
        tempo_bpm: float,
        file: str | None = None,
        start_s: float = 0.0,
        top: int = 10,
        settings: SearchSettings | None = None,
        threads: int | None = 1,
    ) -> SearchResult:
        """Rank the library for the windows of a query file already read by :func:`extract_query_windows` (e.g.
        in a worker process that holds no model): the embedding and ranking half of :meth:`search` with a
        file whose span starts at ``start_s``."""
        if top < 1:
            raise ParameterError(f"top={top} must be >= 1.")
        t0 = time.perf_counter()
        with limited_threads(threads):
            return self._rank_windows(
                modality,
                self._embed_windows(modality, windows),
                windows,
                tempo_bpm=tempo_bpm,
                file=file,
                start_s=start_s,
                top=top,
                settings=settings or self.settings(),
                t0=t0,
            )

    def _rank_windows(
        self,
        modality: Modality,
        emb: ModalityEmbeddings,
        windows: list[Any],
        *,
        tempo_bpm: float,
        file: str | None,
        start_s: float,
        top: int,
        settings: SearchSettings,
        t0: float,
    ) -> SearchResult:
        query = {"clip_id": None, "modality": modality, "source": file, "tempo_bpm": tempo_bpm}
        return self._ranked(
            modality,
            emb,
            query=query,
            starts=[start_s + w.start_s for w in windows],
            beat_lists=[w.beat_times_s.tolist() for w in windows],
            span=self._prepare_config.window_s,
            top=top,
            settings=settings,
            t0=t0,
        )

    def _ranked(
        self,
        modality: Modality,
        emb: ModalityEmbeddings,
        *,
        query: dict[str, Any],
        starts: list[float],
        beat_lists: list[list[float]],
        span: float | None,
        top: int,
        settings: SearchSettings,
        t0: float,
    ) -> SearchResult:
        """The matches of the query window (row of ``emb``) that scores best against the other modality's gallery."""
        gallery_modality: Modality = "dance" if modality == "music" else "music"
        direction = _GALLERY[gallery_modality]
        hits = self._searchers[direction].search(emb, top=min(top, len(self)), settings=settings)
        best = int(np.argmax(hits.combined.max(axis=1)))
        query.update(start_s=starts[best], duration_s=span, beats_s=beat_lists[best])
        windows_info = [{"start_s": s, "best_combined": float(hits.combined[i].max())} for i, s in enumerate(starts)]
        return SearchResult(
            direction=direction,
            query=query,
            windows=windows_info,
            settings=settings.to_dict(),
            matches=self._matches(hits, best, gallery_modality, query["tempo_bpm"]),
            seconds=round(time.perf_counter() - t0, 4),
        )

    def _matches(self, hits: Hits, row: int, modality: Modality, query_tempo: float | None) -> list[Match]:
        found = [int(r) for r in hits.rows[row] if r >= 0]
        out = []
        for rank, it in enumerate(self.items.rows(found), start=1):
            side = it.side(modality)
            out.append(
                Match(
                    rank=rank,
                    id=it.clip_id,
                    group=it.grp,
                    modality=modality,
                    source=side.file,
                    start_s=side.start_s,
                    duration_s=it.duration_s,
                    score=float(hits.score[row, rank - 1]),
                    similarity=float(hits.similarity[row, rank - 1]),
                    beat_alignment=float(hits.beat_alignment[row, rank - 1]),
                    tempo_bpm=side.tempo_bpm,
                    query_tempo_bpm=query_tempo,
                    beats_s=side.beats_s,
                    item=it,
                )
            )
        return out
