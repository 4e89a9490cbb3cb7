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
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import __version__
from ..beats.music import track_music_beats
from ..errors import CheckpointError, DataError, MediaError, ParameterError
from ..features.pooling import beat_slots, pool_segments
from ..features.store import FeatureStore
from ..media.limits import QueryLimits
from ..media.types import MediaClip
from ..model.checkpoint import CONFIG, WEIGHTS, check_compatible, load_checkpoint, resolve_checkpoint
from ..model.config import BlenderConfig
from ..model.inference import NumpyBlender, TorchEncoder, query_encoder
from ..pipeline.extract import (
    WindowSkipped,
    analyse_dance,
    analyse_music,
    check_music_path,
    dance_window,
    get_encoder,
    music_window,
    rhythm_context,
)
from ..pipeline.prepare import PrepareConfig, window_starts
from ..retrieval.hubness import load_querybank, save_querybank
from ..retrieval.index import KINDS, Executor, IndexConfig, VectorIndex, normalize_rows
from ..retrieval.scale import IndexChoice, choose_index, faiss_gpu
from ..retrieval.scoring import Direction, ModalityEmbeddings
from ..retrieval.search import LIBRARY_SEARCH, GallerySearch, Hits, SearchSettings, fit_gallery_querybank
from ..threads import limited_threads
from ..util import atomic_write_json, progress, read_json, resolve_dir, write_dir_atomically
from .arrays import map_arrays
from .catalog import Catalog, Item, write_catalog

if TYPE_CHECKING:  # torch is imported to build a library, not to open or search one
    from ..model.blender import BeatBlender

FORMAT = "beatdance-library"
VERSION = 1
Modality = Literal["music", "dance"]
_GALLERY: dict[str, Direction] = {"dance": "m2d", "music": "d2m"}  # gallery modality -> direction searching it


@dataclass
class LibraryConfig:
    """How a library is indexed and searched by default; saved in library.json.

    ``querybank`` is "library" (the library's own clips of the other modality are the bank queries) or
    the name of a split of the feature store (e.g. "train"). The default search (``LIBRARY_SEARCH``: DIS
    with the library querybank, 0.2 x beat alignment, no beat-head term) is the one measured best in
    ``make bench``.
    """

    index: Literal["flat", "ivf", "hnsw", "ivfpq", "opq-ivfpq", "auto"] = "flat"
    nlist: int = 256
    nprobe: int = 0  # 0: a quarter of the lists, at least 16
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    pq_m: int = 64
    rerank_factor: int = 10
    rerank_min: int = 1000
    shards: int = 1
    querybank_size: int = 10_000  # bank queries sampled (fixed seed) for the QB-Norm fit; 0: all of them
    search: SearchSettings = field(default_factory=lambda: SearchSettings(**LIBRARY_SEARCH.to_dict()))
    querybank: str = "library"
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.index not in (*KINDS, "auto"):
            raise ParameterError(f"index={self.index!r}; expected auto or one of {', '.join(KINDS)} (flat is exact).")
        if self.querybank_size < 0:
            raise ParameterError(f"querybank_size={self.querybank_size} must be >= 0 (bank queries sampled; 0: all).")
        self.index_config(1)  # the other index parameters are checked now, not after embedding the store

    def index_choice(self, dim: int, *, items: int) -> IndexChoice:
        """The index of a library of ``items`` items (``auto`` picks the kind from the size) and why."""
        base = IndexConfig(
            dim=dim,
            kind="flat" if self.index == "auto" else self.index,
            nlist=self.nlist,
            nprobe=self.nprobe,
            hnsw_m=self.hnsw_m,
            hnsw_ef_search=self.hnsw_ef_search,
            pq_m=self.pq_m,
            rerank_factor=self.rerank_factor,
            rerank_min=self.rerank_min,
            shards=self.shards,
        )
        if self.index == "auto":
            return choose_index(items=items, base=base)
        return IndexChoice(base, f"{self.index} ({base.factory})")

    def index_config(self, dim: int, *, items: int = 0) -> IndexConfig:
        return self.index_choice(dim, items=items).config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LibraryConfig:
        return cls(**{**d, "search": SearchSettings(**d["search"])})


def _embeddings_to_arrays(prefix: str, emb: ModalityEmbeddings) -> dict[str, np.ndarray]:
    assert emb.beat_head is not None
    return {
        f"{prefix}_fuse": emb.fuse,
        f"{prefix}_beat": emb.beat_head,
        f"{prefix}_grid": np.ascontiguousarray(emb.beat_grid, dtype=np.uint8),
    }


def _arrays_to_embeddings(
    arrays: dict[str, np.ndarray], prefix: str, ids: list[str], groups: list[str]
) -> ModalityEmbeddings:
    return ModalityEmbeddings(
        fuse=arrays[f"{prefix}_fuse"],
        beat_head=arrays[f"{prefix}_beat"],
        beat_grid=arrays[f"{prefix}_grid"].astype(np.float32),
        ids=ids,
        groups=groups,
    )


def _concat(a: ModalityEmbeddings | None, b: ModalityEmbeddings) -> ModalityEmbeddings:
    if a is None:
        return b
    assert a.beat_head is not None and b.beat_head is not None
    return ModalityEmbeddings(
        fuse=np.concatenate([a.fuse, b.fuse]),
        beat_head=np.concatenate([a.beat_head, b.beat_head]),
        beat_grid=np.concatenate([a.beat_grid, b.beat_grid]),
        ids=a.ids + b.ids,
        groups=(a.groups or a.ids) + (b.groups or b.ids),
    )


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path), metadata={"format": FORMAT})


def _embed_store(
    *,
    net: BeatBlender,
    store: FeatureStore,
    ids: list[str],
    batch_size: int,
    chunk: int = 256,
    show_progress: bool,
    desc: str,
    items: list[Item] | None = None,
    device: str = "cpu",
) -> tuple[ModalityEmbeddings | None, ModalityEmbeddings | None]:
    """Embed store clips ``ids`` chunk by chunk (bounded memory), checking they fit the model. With ``items``,
    an Item is appended for every clip (rows continue its numbering) from the same read of the clip file."""
    cfg = net.config
    music: ModalityEmbeddings | None = None
    dance: ModalityEmbeddings | None = None
    bar = progress(desc=desc, total=len(ids), enabled=show_progress)
    for a in range(0, len(ids), chunk):
        records = [store.get(clip_id) for clip_id in ids[a : a + chunk]]
        fs = store.pool_records(records, num_segments=cfg.num_segments, slots=cfg.beat_slots)
        check_compatible(cfg, fs, source=f"feature store {store.path}")
        from ..retrieval.embed import embed_featureset  # torch: building a library, not searching it

        m, d = embed_featureset(net, fs, batch_size=batch_size, device=device)
        music, dance = _concat(music, m), _concat(dance, d)
        if items is not None:
            items.extend(
                [
                    Item.from_store(
                        row=row,
                        clip_id=r.clip_id,
                        meta=r.meta,
                        music_beats_s=r.music_beat_times.tolist(),
                        dance_beats_s=r.dance_beat_times.tolist(),
                    )
                    for row, r in enumerate(records, start=len(items))
                ]
            )
        bar.update(len(fs))
    bar.close()
    return music, dance


@dataclass
class IndexReport:
    """What ``build_library`` did."""

    library: str
    items: int
    added: int
    already_indexed: int
    querybank: str
    seconds: float
    index: str = ""  # the index kind built, and why (``auto``)
    device: str = ""  # where the model embedded the clips and FAISS built the index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_library(
    *,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    split: str | None = None,
    config: LibraryConfig | None = None,
    add: bool = False,
    show_progress: bool = True,
    executor: Executor = "local",
    ray_address: str | None = None,
    device: str = "cpu",
) -> IndexReport:
    """Embed the clips of feature store ``data`` (every clip, or ``split``) into library ``out``.

    A new library needs ``model`` (a checkpoint or run directory). With ``add`` the clips not yet in
    the existing library ``out`` are added with the library's own model and settings (``model`` and
    ``config``, when given, must be the library's), and the indexes and querybanks are rebuilt. ``executor``
    and ``ray_address``: where the index shards are filled (see ``write_library``). ``device``: the torch device
    that embeds the clips; on CUDA the IVF kinds also train on the GPU where faiss has GPU support.
    """
    t0 = time.perf_counter()
    out = Path(out)
    current = resolve_dir(out)  # the library's files are read from the version the path names now
    store = FeatureStore.open(data)
    old: Library | None = None
    if add:
        old = Library.open(current)
        if config is not None and config != old.config:
            raise ParameterError(
                f"--add keeps the settings of {out}; drop the index/search options or build a new library."
            )
        config = old.config
        if (
            model is not None
            and resolve_checkpoint(model).joinpath(WEIGHTS).read_bytes() != (current / "model" / WEIGHTS).read_bytes()
        ):
            raise CheckpointError(
                f"{model} is not the model of library {out}; --add embeds with the library's own "
                "model. Drop --model, or build a new library for the new model."
            )
        ckpt_dir = current / "model"
        if old.store_config != store.config:
            raise CheckpointError(
                f"{data} was prepared with other extractor settings than library {out}; "
                "prepare the new media with the library's settings (see its library.json)."
            )
    elif model is None:
        raise ParameterError("a new library needs --model (a checkpoint or `beatdance train` run folder).")
    else:
        if (current / "library.json").exists():
            raise ParameterError(f"{out} already holds a library. Pass --add to add clips to it, or a new --out.")
        ckpt_dir = resolve_checkpoint(model)
    config = config or LibraryConfig()
    net, ckpt = load_checkpoint(ckpt_dir, device=device)
    if net.config.variant == "official":
        warnings.warn(
            "the 'official' variant attends across the batch, so a clip's embedding depends on the clips "
            "embedded with it (library: store order, batches of --batch-size; a query: its own windows). "
            "Search results are only meaningful with the 'temporal' variant.",
            stacklevel=2,
        )
    from ..retrieval.protocol import check_same_extractors

    check_same_extractors(ckpt.get("data", {}), {"store_config": store.config}, data=Path(data))
    ids = store.split_ids(split) if split else store.ids()
    if not ids:
        raise DataError(
            f"the feature store {data} has no clips{f' in split {split!r}' if split else ''}; "
            "run `beatdance prepare` on media first."
        )
    known = set(old.ids) if old is not None else set()
    new_ids = [i for i in ids if i not in known]
    items = list(old.items) if old is not None else []
    music, dance = _embed_store(
        net=net,
        store=store,
        ids=new_ids,
        batch_size=config.batch_size,
        show_progress=show_progress,
        desc="embed",
        items=items,
        device=device,
    )
    if old is not None:
        prev_music, prev_dance = old.embeddings("music"), old.embeddings("dance")
        music = _concat(prev_music, music) if music is not None else prev_music
        dance = _concat(prev_dance, dance) if dance is not None else prev_dance
    assert music is not None and dance is not None
    gpu, faiss_where = faiss_gpu(device, kind=config.index_config(music.fuse.shape[1], items=len(items)).kind)
    bank: tuple[ModalityEmbeddings, ModalityEmbeddings] | None = None
    if config.querybank != "library":
        if old is not None:
            arrays = map_arrays(current / "bank.safetensors")
            blank = [""] * len(arrays["music_fuse"])
            bank = (
                _arrays_to_embeddings(arrays, "music", blank, blank),
                _arrays_to_embeddings(arrays, "dance", blank, blank),
            )
        else:
            bm, bd = _embed_store(
                net=net,
                store=store,
                ids=store.split_ids(config.querybank),
                batch_size=config.batch_size,
                show_progress=show_progress,
                desc=f"querybank ({config.querybank})",
                device=device,
            )
            if bm is None or bd is None:
                raise DataError(
                    f"split {config.querybank!r} of {data} is empty; pass another --querybank split or 'library'."
                )
            bank = (bm, bd)
    choice = write_library(
        out=out,
        checkpoint=ckpt_dir,
        items=items,
        music=music,
        dance=dance,
        config=config,
        store_config=store.config,
        bank=bank,
        executor=executor,
        ray_address=ray_address,
        gpu=gpu,
    )
    return IndexReport(
        library=str(out),
        items=len(items),
        added=len(new_ids),
        already_indexed=len(ids) - len(new_ids),
        querybank=config.querybank,
        seconds=round(time.perf_counter() - t0, 2),
        index=choice.reason,
        device=f"model on {device}, {faiss_where}",
    )


def write_library(
    *,
    out: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    items: list[Item],
    music: ModalityEmbeddings,
    dance: ModalityEmbeddings,
    config: LibraryConfig,
    store_config: dict[str, Any],
    bank: tuple[ModalityEmbeddings, ModalityEmbeddings] | None = None,
    executor: Executor = "local",
    ray_address: str | None = None,
    gpu: int | None = None,
) -> IndexChoice:
    """Write a library from embeddings already made by ``checkpoint``'s model: indexes, querybank statistics,
    metadata, atomically; returns the index built. ``bank`` (music, dance) is the querybank; None: the library's
    own clips. ``executor="ray"`` fills the index shards as Ray tasks and ``gpu`` trains them on that FAISS GPU
    (``VectorIndex.build``)."""
    n = len(items)
    if len(music) != n or len(dance) != n:
        raise ParameterError(
            f"{n} items but {len(music)} music and {len(dance)} dance embeddings; give one of each per item."
        )
    ckpt_dir = resolve_checkpoint(checkpoint)
    model_config = read_json(ckpt_dir / CONFIG)["model"]
    bank_music, bank_dance = bank if bank is not None else (music, dance)
    pairs: dict[Direction, tuple[ModalityEmbeddings, ModalityEmbeddings]] = {
        "m2d": (bank_music, dance),
        "d2m": (bank_dance, music),
    }
    stats = {
        d: fit_gallery_querybank(
            bank=b,
            gallery=g,
            direction=d,
            settings=config.search,
            bank_size=config.querybank_size,
            source={"querybank": config.querybank},
        )
        for d, (b, g) in pairs.items()
    }
    choice = config.index_choice(music.fuse.shape[1], items=n)
    indexes = {
        name: VectorIndex.build(emb.fuse, config=choice.config, executor=executor, ray_address=ray_address, gpu=gpu)
        for name, emb in (("music", music), ("dance", dance))
    }

    def fill(tmp: Path) -> None:
        (tmp / "model").mkdir()
        for f in (WEIGHTS, CONFIG):
            shutil.copyfile(ckpt_dir / f, tmp / "model" / f)
        write_catalog(tmp / "meta.sqlite", items)
        _save_arrays(
            tmp / "embeddings.safetensors",
            {**_embeddings_to_arrays("music", music), **_embeddings_to_arrays("dance", dance)},
        )
        if bank is not None:
            _save_arrays(
                tmp / "bank.safetensors",
                {**_embeddings_to_arrays("music", bank_music), **_embeddings_to_arrays("dance", bank_dance)},
            )
        for name, index in indexes.items():
            index.save(tmp / f"{name}.faiss")
        for d, st in stats.items():
            save_querybank(tmp / f"querybank_{d}.safetensors", st)
        atomic_write_json(
            tmp / "library.json",
            {
                "format": FORMAT,
                "version": VERSION,
                "beatdance": __version__,
                "items": n,
                "config": config.to_dict(),
                "model": model_config,
                "store_config": store_config,
            },
        )

    write_dir_atomically(Path(out), fill)
    return choice


@dataclass
class Match:
    """One ranked library item. ``source`` (the media file) and ``start_s`` locate the matched modality's
    media. The same fields, under the same names, are the service's JSON (``beatdance.service.schemas``)."""

    rank: int
    id: str
    group: str
    modality: Modality
    source: str | None
    start_s: float | None
    duration_s: float | None
    score: float
    similarity: float
    beat_alignment: float
    tempo_bpm: float | None
    query_tempo_bpm: float | None
    beats_s: list[float]
    item: Item

    def to_dict(self) -> dict[str, Any]:
        """The match as JSON data, without ``item`` (the library's record, which the fields already give)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "item"}


@dataclass
class SearchResult:
    """The ranked matches of the best query window, and how the query was read."""

    direction: Direction
    query: dict[str, Any]
    windows: list[dict[str, float]]
    settings: dict[str, Any]
    matches: list[Match]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "matches"},
            "matches": [m.to_dict() for m in self.matches],
        }


def extract_query_windows(
    *,
    config: PrepareConfig,
    rhythm_branch: bool,
    modality: Modality,
    path: str | os.PathLike[str],
    start_s: float = 0.0,
    duration_s: float | None = None,
    hop_s: float | None = None,
    limits: QueryLimits | None = None,
) -> tuple[list[Any], Any]:
    """Windows of a query file extracted with a library's extractor settings ``config`` (``rhythm_branch``: the
    model takes rhythm arrays): (windows, track). Needs no model, so a worker process can run it for the model's owner.
    ``limits`` (default ``QueryLimits()``) caps what the file may cost, from its header before decoding and while
    decoding: LimitError names the cap passed and its option."""
    limits = limits or QueryLimits()
    hop = hop_s if hop_s is not None else config.window_s / 2
    if modality == "music":
        check_music_path(path)
        track: Any = analyse_music(
            path,
            sr=config.sr,
            beat_config=config.music_beats,
            start_s=start_s,
            duration_s=duration_s,
            min_duration_s=config.window_s,
            limits=limits,
        )
        encoder = get_encoder(config.music_encoder, config.music_encoder_options, modality="music")
    else:
        track = analyse_dance(
            path,
            beat_config=config.dance_beats,
            start_s=start_s,
            duration_s=duration_s,
            pose_fps=config.pose_fps,
            max_side=config.max_side,
            min_person_ratio=config.min_person_ratio,
            limits=limits,
        )
        encoder = get_encoder(config.dance_encoder, config.dance_encoder_options, modality="dance")
    starts = window_starts(
        dance_duration_s=track.duration_s,
        music_duration_s=track.duration_s,
        offset_s=0.0,
        window_s=config.window_s,
        hop_s=hop,
    )
    rhythm = rhythm_context(track, config.rhythm) if rhythm_branch and starts else None
    if not starts:
        raise MediaError(
            f"{path}: the query is {track.duration_s:.1f} s long, shorter than the library's "
            f"{config.window_s:g}-s window. Pass a longer clip (or a longer --duration)."
        )
    windows, skipped = [], []
    for s in starts:
        try:
            if modality == "music":
                windows.append(
                    music_window(
                        track,
                        start_s=s,
                        window_s=config.window_s,
                        grid_fps=config.grid_fps,
                        encoder=encoder,
                        rhythm=rhythm,
                    )
                )
            else:
                windows.append(
                    dance_window(
                        track,
                        start_s=s,
                        window_s=config.window_s,
                        grid_fps=config.grid_fps,
                        encoder=encoder,
                        min_person_ratio=config.min_person_ratio,
                        rhythm=rhythm,
                    )
                )
        except WindowSkipped as why:
            skipped.append(f"{s:g} s: {why}")
    if not windows:
        raise MediaError(
            f"{path}: no usable {config.window_s:g}-s window ({'; '.join(skipped)}). "
            "Pass a clip with audible music / a dancer in view."
        )
    return windows, track


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
        dim = net.config.output_dim
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
        rhythm = np.stack([w.rhythm for w in windows]) if cfg.rhythm_branch else None
        out = self.model.encode(modality, feats, beats, rhythm)
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
            rhythm_branch=self.model.config.rhythm_branch,
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
