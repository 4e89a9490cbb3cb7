"""Searching one indexed modality: vector-index candidates, the beat-enhanced score, then QB-Norm.

A query is answered in two stages. The vector index returns the ``candidates`` gallery items with the
highest fused cosine; only those are scored with the full beat-enhanced score (``scoring``) and
normalised by the querybank statistics fitted on that same score (``hubness``). When ``candidates``
is at least the gallery size the result equals scoring the whole gallery (tested); below that, an
item outside the fused-cosine shortlist cannot be promoted by its beat terms or its normaliser, which
is the usual approximation of re-ranking search (raise ``candidates`` to trade speed for exactness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..beats.alignment import beat_side
from ..errors import ParameterError
from .hubness import QuerybankStats, fit_querybank
from .index import VectorIndex
from .scoring import Direction, ModalityEmbeddings, Scorer

Hubness = Literal["none", "is", "dis"]


@dataclass
class SearchSettings:
    """How scores are made. The beat weights and ``k``/``beta`` must match the querybank's when hubness is on."""

    hubness: Hubness = "dis"
    k: int = 1
    beta: float = 20.0
    beat_weight_head: float = 0.0
    beat_weight_align: float = 0.0
    sigma_frames: float = 3.0
    candidates: int = 1000

    def __post_init__(self) -> None:
        if self.hubness not in ("none", "is", "dis"):
            raise ParameterError(f"hubness={self.hubness!r}; expected 'none', 'is' or 'dis'.")
        if self.candidates < 1:
            raise ParameterError(f"candidates={self.candidates} must be >= 1 (items re-ranked per query, e.g. 1000).")

    def score_definition(self) -> dict[str, float]:
        """What a querybank fitted for these settings depends on."""
        return {
            "beat_weight_head": self.beat_weight_head,
            "beat_weight_align": self.beat_weight_align,
            "sigma_frames": self.sigma_frames,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


LIBRARY_SEARCH = SearchSettings(hubness="dis", beat_weight_head=0.0, beat_weight_align=0.2)
"""A library's default search, chosen in ``make bench`` (default recipe, 16 runs, each query normalised by
a querybank of the test gallery's own clips without the query's own pair, as a new query meets a
library): with the metre prior, DIS with that library querybank and 0.2 x beat alignment gives MedR/N
0.151 / 0.148 and pair R@1 53.1 / 53.0 % (m2d / d2m) against 0.155 / 0.166 and 47.5 / 46.9 % for the
plain score, while a held-apart (train or val split) querybank helps less or hurts; the official code's
0.8 x beat-head term added nothing measurable, so it is off."""


@dataclass
class Hits:
    """Per query row, the top items best first: gallery rows and every part of their score."""

    rows: np.ndarray  # (Q, top) int64 gallery rows
    score: np.ndarray  # final ranking score (after QB-Norm when on; rows of DIS may be raw scores)
    combined: np.ndarray  # beat-enhanced score before QB-Norm
    similarity: np.ndarray  # fused cosine
    beat_alignment: np.ndarray  # BA of the music and dance beat grids (music as reference)
    normalised: np.ndarray  # (Q,) bool: True where QB-Norm was applied to the row


def sample_bank(bank: ModalityEmbeddings, *, size: int, seed: int = 0) -> ModalityEmbeddings:
    """``size`` rows of ``bank`` drawn without replacement with a fixed seed, in their order (all of it when
    ``size`` is 0 or at least its length)."""
    if size < 0:
        raise ParameterError(f"querybank size={size} must be >= 0 (bank queries sampled; 0: all of them).")
    if size == 0 or size >= len(bank):
        return bank
    rows = np.sort(np.random.default_rng(seed).choice(len(bank), size, replace=False))
    return ModalityEmbeddings(
        fuse=bank.fuse[rows],
        beat_head=None if bank.beat_head is None else bank.beat_head[rows],
        beat_grid=bank.beat_grid[rows],
        ids=[bank.ids[i] for i in rows],
    )


def fit_gallery_querybank(
    *,
    bank: ModalityEmbeddings,
    gallery: ModalityEmbeddings,
    direction: Direction,
    settings: SearchSettings,
    chunk_size: int = 1024,
    source: dict[str, Any] | None = None,
    bank_size: int = 0,
    seed: int = 0,
) -> QuerybankStats:
    """QB-Norm statistics of ``gallery`` for ``bank`` queries, on the beat-enhanced score of ``settings``.

    The fit scores every bank query against the whole gallery (bank x gallery work), so a library-sized bank
    grows quadratically: ``bank_size`` > 0 fits on that many bank queries sampled with ``seed`` (the recall it
    costs is measured in ``benchmarks/index_scale.py``)."""
    sampled = sample_bank(bank, size=bank_size, seed=seed)
    if len(sampled) < len(bank):
        source = {**(source or {}), "sampled_from": len(bank), "sample_seed": seed}
    bank = sampled
    scorer = Scorer(
        gallery,
        direction=direction,
        beat_weight_head=settings.beat_weight_head,
        beat_weight_align=settings.beat_weight_align,
        sigma_frames=settings.sigma_frames,
    )
    chunks = (scorer.scores(bank, slice(a, a + chunk_size)) for a in range(0, len(bank), chunk_size))
    return fit_querybank(
        chunks,
        k=settings.k,
        beta=settings.beta,
        source={**(source or {}), **settings.score_definition(), "direction": direction},
    )


class GallerySearch:
    """Answers queries against one modality's gallery held in ``index`` (rows = index ids)."""

    def __init__(
        self,
        *,
        index: VectorIndex,
        beat_head: np.ndarray | None,
        beat_grid: np.ndarray,
        direction: Direction,
        querybank: QuerybankStats | None = None,
    ) -> None:
        n = len(index)
        if beat_grid.shape[0] != n or (beat_head is not None and beat_head.shape[0] != n):
            raise ParameterError(
                f"the gallery has {n} indexed items but {beat_grid.shape[0]} beat grids"
                f"{'' if beat_head is None else f' and {beat_head.shape[0]} beat-head rows'}; "
                "rebuild the library."
            )
        if querybank is not None and querybank.gallery_size != n:
            raise ParameterError(
                f"the querybank was fitted on {querybank.gallery_size} items, the gallery has {n}; "
                "refit it (rebuild the library)."
            )
        self.index = index
        self.beat_head = beat_head
        self.beat_grid = np.asarray(beat_grid)
        self.direction = direction
        self.querybank = querybank
        self._gallery_beats: dict[float, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def gallery_side(self, sigma_frames: float, *, chunk: int = 65536) -> np.ndarray:
        """The gallery's factor of BA (see ``beats.alignment.beat_side``), made once per sigma in row chunks
        (bounded temporaries: a million-item gallery takes about a second, not gigabytes)."""
        if sigma_frames not in self._gallery_beats:
            out = np.empty(self.beat_grid.shape, dtype=np.float32)
            for a in range(0, len(out), chunk):
                out[a : a + chunk] = beat_side(
                    self.beat_grid[a : a + chunk], music=self.direction == "d2m", sigma_frames=sigma_frames
                )
            self._gallery_beats[sigma_frames] = out
        return self._gallery_beats[sigma_frames]

    def _check_querybank(self, settings: SearchSettings) -> QuerybankStats | None:
        if settings.hubness == "none":
            return None
        qb = self.querybank
        if qb is None:
            raise ParameterError(
                f"hubness={settings.hubness!r} needs querybank statistics, and this gallery has none; "
                "build the library with a querybank or search with hubness='none'."
            )
        fitted = {key: qb.source.get(key) for key in settings.score_definition()}
        if fitted != settings.score_definition() or (qb.k, qb.beta) != (settings.k, settings.beta):
            raise ParameterError(
                f"the querybank was fitted for k={qb.k}, beta={qb.beta}, {fitted}, but the search asks for k={settings.k}, "
                f"beta={settings.beta}, {settings.score_definition()}. Search with the library's settings, "
                "rebuild the library with the new ones, or use hubness='none'."
            )
        return qb

    def search(self, query: ModalityEmbeddings, *, top: int, settings: SearchSettings) -> Hits:
        """The ``top`` best gallery items for every query row."""
        qb = self._check_querybank(settings)
        n_cand = min(len(self), max(settings.candidates, top))
        sim, rows = self.index.search(query.fuse, k=n_cand)
        rows = rows.astype(np.int64)
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        combined = sim.astype(np.float64)
        if settings.beat_weight_head != 0.0:
            if query.beat_head is None or self.beat_head is None:
                raise ParameterError("beat_weight_head needs beat-head embeddings on both sides; set it to 0.")
            head = np.einsum("qd,qcd->qc", query.beat_head, self.beat_head[safe], optimize=True)
            combined += settings.beat_weight_head * head
        q_side = beat_side(query.beat_grid, music=self.direction == "m2d", sigma_frames=settings.sigma_frames)
        align = np.einsum("qf,qcf->qc", q_side, self.gallery_side(settings.sigma_frames)[safe], optimize=True)
        combined += settings.beat_weight_align * align
        combined[~valid] = -np.inf
        final = combined.copy()
        normalised = np.zeros(len(rows), dtype=bool)
        if qb is not None:
            best = safe[np.arange(len(rows)), np.argmax(combined, axis=1)]
            normalised = np.ones(len(rows), dtype=bool) if settings.hubness == "is" else qb.activation[best]
            lz = qb.log_normaliser[safe]
            final[normalised] = np.exp(qb.beta * combined[normalised] - lz[normalised])
            final[~valid] = -np.inf
        k = min(top, n_cand)
        order = np.argsort(-final, axis=1, kind="stable")[:, :k]

        def take(a: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, order, axis=1)

        return Hits(
            rows=take(rows),
            score=take(final),
            combined=take(combined),
            similarity=take(sim.astype(np.float64)),
            beat_alignment=take(align),
            normalised=normalised,
        )
