"""The beat-enhanced ranking score of a query against a gallery.

    score(q, g) = cos_fuse(q, g) + w_head * cos_beathead(q, g) + w_align * BA(music -> dance)

Embeddings are L2-normalised, so a cosine is a dot product. BA comes from the 0/1 beat grids (10 fps)
with the music as the reference whichever side is the query (m2d: query music vs gallery dance; d2m:
gallery music vs query dance), computed as a matrix product (see ``beats.alignment``).

The beat terms are added BEFORE hubness reduction, and the querybank statistics are fitted on this same
combined score. So a gallery item that becomes a hub through its beats (e.g. a dance with a beat on
every frame aligns well with every music) is normalised like any other hub; fitting QB-Norm on the
fused cosine alone would leave such hubs untouched. With both weights 0 this is the official
BeatDance ranking (the fused cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..beats.alignment import beat_side
from ..errors import ParameterError

Direction = Literal["m2d", "d2m"]
_NORM_TOL = 1e-3


def first_unnormalised_row(x: np.ndarray, *, tol: float = _NORM_TOL, chunk_rows: int = 8192) -> int | None:
    """The first row of ``x`` whose L2 norm is neither 1 (within ``tol``) nor 0 (NaN and inf included), or None.
    Read ``chunk_rows`` at a time, so a memory-mapped million-row matrix needs no gallery-sized temporary."""
    for a in range(0, len(x), chunk_rows):
        norms = np.linalg.norm(x[a : a + chunk_rows], axis=1)
        bad = np.flatnonzero(~((np.abs(norms - 1.0) < tol) | (norms == 0.0)))
        if len(bad):
            return a + int(bad[0])
    return None


def _rows_normalised(x: np.ndarray, *, name: str) -> None:
    i = first_unnormalised_row(x)
    if i is not None:
        raise ParameterError(
            f"{name} row {i} has L2 norm {np.linalg.norm(x[i]):.4f}; expected L2-normalised rows. "
            "Normalise the embeddings first (x / ||x||)."
        )


@dataclass
class ModalityEmbeddings:
    """One modality of N clips: L2-normalised fused (and beat-head) embeddings, 0/1 beat grids at 10 fps,
    clip ids and optional groups (e.g. the song a clip comes from; None: every clip is its own group)."""

    fuse: np.ndarray
    beat_head: np.ndarray | None
    beat_grid: np.ndarray
    ids: list[str]
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        self.fuse = np.ascontiguousarray(self.fuse, dtype=np.float32)
        n = len(self.ids)
        if self.fuse.ndim != 2 or self.fuse.shape[0] != n:
            raise ParameterError(f"fuse has shape {self.fuse.shape}; expected ({n}, E) for {n} ids.")
        _rows_normalised(self.fuse, name="fuse")
        if self.beat_head is not None:
            self.beat_head = np.ascontiguousarray(self.beat_head, dtype=np.float32)
            if self.beat_head.ndim != 2 or self.beat_head.shape[0] != n:
                raise ParameterError(f"beat_head has shape {self.beat_head.shape}; expected ({n}, E) for {n} ids.")
            _rows_normalised(self.beat_head, name="beat_head")
        self.beat_grid = np.asarray(self.beat_grid)
        if self.beat_grid.ndim != 2 or self.beat_grid.shape[0] != n:
            raise ParameterError(
                f"beat_grid has shape {self.beat_grid.shape}; expected ({n}, F) 0/1 frames for {n} ids."
            )
        if self.groups is not None and len(self.groups) != n:
            raise ParameterError(f"groups has {len(self.groups)} entries; expected one per id ({n}).")

    def __len__(self) -> int:
        return len(self.ids)


class Scorer:
    """Scores query rows against a fixed gallery; gallery-side matrices are prepared once.

    ``direction`` is "m2d" for a dance gallery searched by music queries, "d2m" for the reverse.
    """

    def __init__(
        self,
        gallery: ModalityEmbeddings,
        *,
        direction: Direction,
        beat_weight_head: float = 0.0,
        beat_weight_align: float = 0.0,
        sigma_frames: float = 3.0,
    ) -> None:
        if direction not in ("m2d", "d2m"):
            raise ParameterError(f"direction={direction!r}; expected 'm2d' (music queries) or 'd2m' (dance queries).")
        if beat_weight_head != 0.0 and gallery.beat_head is None:
            raise ParameterError(
                f"beat_weight_head={beat_weight_head} needs beat-head embeddings, but the gallery has "
                "none; pass beat_head or set beat_weight_head=0."
            )
        self.gallery = gallery
        self.direction = direction
        self.beat_weight_head = float(beat_weight_head)
        self.beat_weight_align = float(beat_weight_align)
        self.sigma_frames = float(sigma_frames)
        self._gallery_beats = self._beat_side(gallery.beat_grid, query=False) if beat_weight_align != 0.0 else None

    def _beat_side(self, grids: np.ndarray, *, query: bool) -> np.ndarray:
        """Music side: grid / beat count; dance side: the alignment kernel. Their dot product is BA."""
        return beat_side(grids, music=(self.direction == "m2d") == query, sigma_frames=self.sigma_frames)

    def scores(self, query: ModalityEmbeddings, rows: slice) -> np.ndarray:
        """(n, G) float32 combined scores of query rows ``rows`` against the whole gallery."""
        g = self.gallery
        if query.fuse.shape[1] != g.fuse.shape[1]:
            raise ParameterError(
                f"query embeddings are {query.fuse.shape[1]}-d but the gallery's are "
                f"{g.fuse.shape[1]}-d; embed both with the same model."
            )
        out = query.fuse[rows] @ g.fuse.T
        if self.beat_weight_head != 0.0:
            if query.beat_head is None:
                raise ParameterError(
                    f"beat_weight_head={self.beat_weight_head} needs beat-head embeddings, but the "
                    "queries have none; pass beat_head or set beat_weight_head=0."
                )
            out += self.beat_weight_head * (query.beat_head[rows] @ g.beat_head.T)  # type: ignore[union-attr]
        if self._gallery_beats is not None:
            if query.beat_grid.shape[1] != g.beat_grid.shape[1]:
                raise ParameterError(
                    f"query beat grids have {query.beat_grid.shape[1]} frames but the gallery's "
                    f"{g.beat_grid.shape[1]}; use grids of the same length and rate (10 fps)."
                )
            out += self.beat_weight_align * (self._beat_side(query.beat_grid[rows], query=True) @ self._gallery_beats.T)
        return out
