"""Conversion between beat times (seconds) and the official per-frame beat grid.

The official BeatDance loader reads a 0/1 vector per clip at a fixed grid rate (10 fps by default),
whose first ``num_segments * slots`` entries become a (num_segments, slots) array.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def times_to_grid(times_s: np.ndarray, *, duration_s: float, fps: float = 10.0, start_s: float = 0.0) -> np.ndarray:
    """A float32 0/1 vector of ``round(duration_s * fps)`` frames with 1 at every beat frame.

    A beat at time t lands on frame ``round((t - start_s) * fps)``; beats outside the window are dropped.
    """
    if fps <= 0:
        raise ParameterError(
            f"fps={fps} must be strictly positive. Pass the grid rate in frames per second, e.g. fps=10."
        )
    if duration_s <= 0:
        raise ParameterError(f"duration_s={duration_s} must be strictly positive.")
    n = int(round(duration_s * fps))
    grid = np.zeros(n, dtype=np.float32)
    idx = np.round((np.asarray(times_s, dtype=np.float64) - start_s) * fps).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n)]
    grid[idx] = 1.0
    return grid
