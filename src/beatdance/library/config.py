"""A library's format, settings (:class:`LibraryConfig`) and the names of its stored arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import ParameterError
from ..retrieval.index_config import KINDS, IndexConfig
from ..retrieval.scale import IndexChoice, choose_index
from ..retrieval.scoring import Direction, ModalityEmbeddings
from ..retrieval.search import LIBRARY_SEARCH, SearchSettings

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
