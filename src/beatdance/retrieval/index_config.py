"""What a vector index is (:class:`IndexConfig`: its kind, FAISS factory string, lists probed, re-rank shortlist,
shards) and the constants of its training; the index itself is :class:`~beatdance.retrieval.index.VectorIndex`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ParameterError

IndexKind = Literal["flat", "ivf", "hnsw", "ivfpq", "opq-ivfpq"]
Executor = Literal["local", "ray"]
KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw", "ivfpq", "opq-ivfpq")
IVF_KINDS = ("ivf", "ivfpq", "opq-ivfpq")
PQ_KINDS = ("ivfpq", "opq-ivfpq")
PQ_CENTROIDS = 256  # 8-bit codes: k-means of 256 centroids per sub-quantiser
POINTS_PER_CENTROID = 39  # FAISS warns when a k-means has fewer training points per centroid
TRAIN_SEED = 0
# OPQ alternates rotation updates and PQ k-means on 4-d slices, which FAISS runs slowly: with its defaults
# (50 rotations, 65536 points) it trained for minutes on 20k vectors here. A third of ``train_iters`` rotations
# on at most 8192 points halved that again at the same recall after the re-rank (benchmarks/index_scale.py).
OPQ_TRAIN_POINTS = 8192
ADD_CHUNK_ROWS = 65_536  # rows added to a shard at a time by ``build``


@dataclass
class IndexConfig:
    """One index: its ``kind`` and the parameters that kind reads (the others are ignored)."""

    dim: int
    kind: IndexKind = "flat"
    nlist: int = 256
    nprobe: int = 0  # 0: a quarter of the lists, at least 16 (``lists_probed``)
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    pq_m: int = 64
    opq_dim: int = 0  # 0: 4 x pq_m (FAISS's advice)
    rerank_factor: int = 10
    rerank_min: int = 1000  # PQ kinds: re-rank at least this many codes (benchmarks/index_scale.py, README)
    train_size: int = 20_000
    train_iters: int = 10
    shards: int = 1
    threads: int = 0  # 0: leave FAISS's default

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"index kind {self.kind!r}; expected one of {', '.join(KINDS)} (flat is exact).")
        if self.dim <= 0:
            raise ParameterError(f"dim={self.dim} must be positive.")
        if self.nprobe < 0:
            raise ParameterError(f"nprobe={self.nprobe} must be >= 0 (0: a quarter of the lists, at least 16).")
        for name in (
            "nlist",
            "hnsw_m",
            "hnsw_ef_search",
            "pq_m",
            "rerank_factor",
            "rerank_min",
            "train_size",
            "train_iters",
            "shards",
        ):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.opq_dim < 0 or self.opq_dim % self.pq_m:
            raise ParameterError(
                f"opq_dim={self.opq_dim} is not a multiple of pq_m={self.pq_m}; OPQ splits its "
                "output among the sub-quantisers (e.g. opq_dim=256 for pq_m=64, or 0: 4 x pq_m)."
            )

    @property
    def factory(self) -> str:
        """The ``faiss.index_factory`` string of one shard."""
        if self.kind == "flat":
            return "Flat"
        if self.kind == "ivf":
            return f"IVF{self.nlist},Flat"
        if self.kind == "hnsw":
            return f"HNSW{self.hnsw_m}"
        pq = f"IVF{self.nlist},PQ{self.pq_m}"
        if self.kind == "opq-ivfpq":
            return f"OPQ{self.pq_m}_{self.opq_dim or 4 * self.pq_m},{pq}"
        padded = -(-self.dim // self.pq_m) * self.pq_m
        return pq if padded == self.dim else f"Pad{padded},{pq}"

    @property
    def lists_probed(self) -> int:
        """Inverted lists a query scans: ``nprobe``, or for 0 a quarter of ``nlist`` (at least 16, at most all).
        A fixed 16 of 256 lists kept only 0.71-0.90 of the exact top 10 of a trained model's embeddings, whose
        neighbours spread over many lists; a quarter kept 0.95-0.98 (tests/retrieval/test_index_trained.py)."""
        return min(self.nlist, self.nprobe or max(16, self.nlist // 4))

    def min_train_items(self) -> int:
        """Vectors the quantisers need: ``nlist`` for IVF (FAISS's minimum), 39 per centroid for the PQ kinds."""
        if self.kind == "ivf":
            return self.nlist
        if self.kind in PQ_KINDS:
            return POINTS_PER_CENTROID * max(self.nlist, PQ_CENTROIDS)
        return 0
