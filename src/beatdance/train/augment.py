"""Tempo augmentation of rhythm arrays (``beats.rhythm``), on the log-tempo axis where a stretch is a shift.

* :func:`stretch_pairs` plays each training pair faster or slower as a whole: music and dance rhythm
  arrays move by the same random number of octaves, so the pair still agrees and the model cannot
  learn songs by their absolute tempo.
* :func:`mismatch` moves only one side, by a clearly audible amount (a few percent up or down): a
  tempo-mismatched negative that differs from its positive in nothing but tempo, which teaches the
  rhythm branch to hear tempo precisely.

Per-frame features are not resampled: the global features of a 10-s window are mean-pooled over one-second
segments, and a stretch of a few percent moves them by less than one frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model.rhythm import shift_bins


def _uniform(generator: torch.Generator, *, rows: int, share: tuple[int, int] | None) -> Tensor:
    """``rows`` uniform draws in [0, 1). With ``share`` = (first row, global rows), the draws of the whole global
    batch, cut to this rank's rows: a rank of a data-parallel run draws what one process on the global batch does."""
    if share is None:
        return torch.rand(rows, generator=generator)
    first, total = share
    assert first + rows <= total, (first, rows, total)
    return torch.rand(total, generator=generator)[first : first + rows]


def stretch_pairs(
    music: Tensor,
    dance: Tensor,
    *,
    max_octaves: float,
    bins_per_octave: int,
    generator: torch.Generator,
    share: tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Both sides of each pair shifted by one shared random amount in [-max_octaves, max_octaves]."""
    octaves = (_uniform(generator, rows=music.shape[0], share=share) * 2.0 - 1.0) * max_octaves
    octaves = octaves.to(music.device)
    return shift_bins(music, octaves, bins_per_octave=bins_per_octave), shift_bins(
        dance, octaves, bins_per_octave=bins_per_octave
    )


def mismatch(
    rhythm: Tensor,
    *,
    min_octaves: float,
    max_octaves: float,
    bins_per_octave: int,
    generator: torch.Generator,
    share: tuple[int, int] | None = None,
) -> Tensor:
    """Each row shifted by a random amount of [min_octaves, max_octaves] octaves, up or down at random."""
    size = _uniform(generator, rows=rhythm.shape[0], share=share) * (max_octaves - min_octaves) + min_octaves
    sign = torch.where(_uniform(generator, rows=rhythm.shape[0], share=share) < 0.5, -1.0, 1.0)
    return shift_bins(rhythm, (size * sign).to(rhythm.device), bins_per_octave=bins_per_octave)
