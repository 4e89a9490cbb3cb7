"""Beat alignment (BA) between music beats and dance beats (SPEC §5).

BA(M -> D) = mean over music beats b of exp(-min_{d in D} (d - b)^2 / (2 sigma^2)): the music is the
reference, as in Bailando and the official BeatDance d2m code. It is 0 when either set is empty.

Besides the single-pair score this module gives a matrix form for many pairs: on 0/1 beat grids,
BA(music_i -> dance_j) = (music_i / |music_i|) . kernel(dance_j), where kernel(dance_j)[t] is the
Gaussian of the distance from frame t to the nearest beat of dance_j. An (Nm, Nd) BA matrix is then a
single matrix product, which scales to large galleries.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def _check_sigma(sigma: float, *, name: str) -> None:
    if not sigma > 0:
        raise ParameterError(f"{name}={sigma} must be strictly positive (the Gaussian width of beat alignment).")


def _nearest_distances(reference: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Absolute distance from every value of ``reference`` to the nearest value of ``targets`` (non-empty)."""
    targets = np.sort(targets)
    pos = np.searchsorted(targets, reference)
    left = targets[np.clip(pos - 1, 0, len(targets) - 1)]
    right = targets[np.clip(pos, 0, len(targets) - 1)]
    return np.minimum(np.abs(reference - left), np.abs(reference - right))


def _ba(music: np.ndarray, dance: np.ndarray, sigma: float) -> float:
    """BA in any unit shared by the beats and ``sigma``."""
    if music.size == 0 or dance.size == 0:
        return 0.0
    d = _nearest_distances(music, dance)
    return float(np.mean(np.exp(-(d**2) / (2.0 * sigma**2))))


def _beats_1d(beats: np.ndarray, *, name: str) -> np.ndarray:
    arr = np.asarray(beats, dtype=np.float64)
    if arr.ndim != 1:
        raise ParameterError(f"{name} has shape {arr.shape}; expected a 1-D array of beat positions.")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} contains NaN or infinite values; pass finite beat positions.")
    return arr


def beat_alignment_score(*, music_beats: np.ndarray, dance_beats: np.ndarray, sigma_frames: float = 3.0) -> float:
    """BA(music -> dance) of beat positions in frames: for each music beat the nearest dance beat."""
    _check_sigma(sigma_frames, name="sigma_frames")
    return _ba(_beats_1d(music_beats, name="music_beats"), _beats_1d(dance_beats, name="dance_beats"), sigma_frames)


def _grids_2d(grids: np.ndarray, *, name: str) -> np.ndarray:
    arr = np.asarray(grids)
    if arr.ndim != 2:
        raise ParameterError(f"{name} has shape {arr.shape}; expected (N, F) per-frame 0/1 beat grids.")
    return arr > 0


def alignment_kernel(grids: np.ndarray, *, sigma_frames: float = 3.0) -> np.ndarray:
    """(N, F) float32: exp(-d^2 / (2 sigma^2)) with d the distance of each frame to the row's nearest beat.

    A row without beats gives zeros, so it aligns with nothing.
    """
    _check_sigma(sigma_frames, name="sigma_frames")
    beats = _grids_2d(grids, name="grids")
    n, f = beats.shape
    frames = np.arange(f, dtype=np.float64)
    last = np.maximum.accumulate(np.where(beats, frames, -np.inf), axis=1)
    nxt = np.minimum.accumulate(np.where(beats, frames, np.inf)[:, ::-1], axis=1)[:, ::-1]
    dist = np.minimum(frames - last, nxt - frames)
    return np.exp(-(dist**2) / (2.0 * sigma_frames**2)).astype(np.float32).reshape(n, f)


def normalized_beat_grids(grids: np.ndarray) -> np.ndarray:
    """(N, F) float32: each 0/1 grid divided by its beat count (zero rows stay zero)."""
    beats = _grids_2d(grids, name="grids").astype(np.float32)
    counts = beats.sum(axis=1, keepdims=True)
    return np.divide(beats, counts, out=np.zeros_like(beats), where=counts > 0)


def beat_side(grids: np.ndarray, *, music: bool, sigma_frames: float = 3.0) -> np.ndarray:
    """The factor of BA for one side: music grids divided by their beat count, or the dance kernel.

    BA(music_i -> dance_j) = beat_side(music)[i] . beat_side(dance)[j].
    """
    return normalized_beat_grids(grids) if music else alignment_kernel(grids, sigma_frames=sigma_frames)


def alignment_matrix(*, music_grids: np.ndarray, dance_grids: np.ndarray, sigma_frames: float = 3.0) -> np.ndarray:
    """(Nm, Nd) float32 with [i, j] = BA(music_i -> dance_j) of 0/1 beat grids of the same frame rate."""
    music = np.asarray(music_grids)
    dance = np.asarray(dance_grids)
    if music.ndim != 2 or dance.ndim != 2 or music.shape[1] != dance.shape[1]:
        raise ParameterError(
            f"music_grids {music.shape} and dance_grids {dance.shape} must both be (N, F) with the same F "
            "(frames at the same grid rate)."
        )
    return beat_side(music, music=True) @ beat_side(dance, music=False, sigma_frames=sigma_frames).T


def best_offset(
    *, music_beats_s: np.ndarray, dance_beats_s: np.ndarray, max_offset_s: float, step_s: float, sigma_s: float
) -> tuple[float, float]:
    """The shift of the music (seconds, in [-max_offset_s, max_offset_s]) that maximises BA, and that BA.

    A positive offset delays the music: a music beat at t is heard at t + offset. Among equal scores the
    smallest shift wins, so a perfectly aligned pair keeps offset 0.
    """
    if not max_offset_s >= 0:
        raise ParameterError(f"max_offset_s={max_offset_s} must be >= 0 (the largest shift to try, in seconds).")
    if not step_s > 0:
        raise ParameterError(f"step_s={step_s} must be strictly positive (the shift resolution, in seconds).")
    _check_sigma(sigma_s, name="sigma_s")
    music = _beats_1d(music_beats_s, name="music_beats_s")
    dance = _beats_1d(dance_beats_s, name="dance_beats_s")
    n_steps = int(np.floor(max_offset_s / step_s + 1e-9))
    offsets = np.arange(-n_steps, n_steps + 1, dtype=np.float64) * step_s
    offsets = offsets[np.argsort(np.abs(offsets), kind="stable")]
    scores = np.array([_ba(music + off, dance, sigma_s) for off in offsets])
    best = int(np.argmax(scores))
    return float(offsets[best]), float(scores[best])
