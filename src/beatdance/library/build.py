"""Building a library: embed a store's clips with a trained model (torch), index them and write the folder
atomically (:func:`build_library`, :func:`write_library`)."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import CheckpointError, DataError, ParameterError
from ..features.store import FeatureStore
from ..model.checkpoint import CONFIG, WEIGHTS, check_compatible, load_checkpoint, resolve_checkpoint
from ..retrieval.hubness import save_querybank
from ..retrieval.index import VectorIndex
from ..retrieval.index_config import Executor
from ..retrieval.scale import IndexChoice, faiss_gpu
from ..retrieval.scoring import Direction, ModalityEmbeddings
from ..retrieval.search import fit_gallery_querybank
from ..util import atomic_write_json, progress, read_json, resolve_dir, write_dir_atomically
from .arrays import map_arrays
from .catalog import Item, write_catalog
from .config import FORMAT, VERSION, LibraryConfig, _arrays_to_embeddings, _embeddings_to_arrays
from .library import Library

if TYPE_CHECKING:  # torch is imported to build a library, not to open or search one
    from ..model.blender import BeatBlender


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


def _library_target(
    *,
    out: Path,
    current: Path,
    data: str | os.PathLike[str],
    store: FeatureStore,
    model: str | os.PathLike[str] | None,
    config: LibraryConfig | None,
    add: bool,
) -> tuple[Library | None, LibraryConfig, Path]:
    """(the library added to or None, its settings, its checkpoint): with ``add`` the existing library's own
    model, settings and extractor settings, which ``model``, ``config`` and the store must match; otherwise
    ``model`` for a new library at an ``out`` that holds none."""
    if not add:
        if model is None:
            raise ParameterError("a new library needs --model (a checkpoint or `beatdance train` run folder).")
        if (current / "library.json").exists():
            raise ParameterError(f"{out} already holds a library. Pass --add to add clips to it, or a new --out.")
        return None, config or LibraryConfig(), resolve_checkpoint(model)
    old = Library.open(current)
    if config is not None and config != old.config:
        raise ParameterError(
            f"--add keeps the settings of {out}; drop the index/search options or build a new library."
        )
    if (
        model is not None
        and resolve_checkpoint(model).joinpath(WEIGHTS).read_bytes() != (current / "model" / WEIGHTS).read_bytes()
    ):
        raise CheckpointError(
            f"{model} is not the model of library {out}; --add embeds with the library's own "
            "model. Drop --model, or build a new library for the new model."
        )
    if old.store_config != store.config:
        raise CheckpointError(
            f"{data} was prepared with other extractor settings than library {out}; "
            "prepare the new media with the library's settings (see its library.json)."
        )
    return old, old.config, current / "model"


def _querybank(
    *,
    config: LibraryConfig,
    old: Library | None,
    current: Path,
    net: BeatBlender,
    store: FeatureStore,
    data: str | os.PathLike[str],
    show_progress: bool,
    device: str,
) -> tuple[ModalityEmbeddings, ModalityEmbeddings] | None:
    """The querybank of a split (an added-to library keeps its own), or None when it is the library itself."""
    if config.querybank == "library":
        return None
    if old is not None:
        arrays = map_arrays(current / "bank.safetensors")
        blank = [""] * len(arrays["music_fuse"])
        return _arrays_to_embeddings(arrays, "music", blank, blank), _arrays_to_embeddings(
            arrays, "dance", blank, blank
        )
    music, dance = _embed_store(
        net=net,
        store=store,
        ids=store.split_ids(config.querybank),
        batch_size=config.batch_size,
        show_progress=show_progress,
        desc=f"querybank ({config.querybank})",
        device=device,
    )
    if music is None or dance is None:
        raise DataError(f"split {config.querybank!r} of {data} is empty; pass another --querybank split or 'library'.")
    return music, dance


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
    old, config, ckpt_dir = _library_target(
        out=out, current=current, data=data, store=store, model=model, config=config, add=add
    )
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
    bank = _querybank(
        config=config,
        old=old,
        current=current,
        net=net,
        store=store,
        data=data,
        show_progress=show_progress,
        device=device,
    )
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
