"""The in-memory form of one split of a dataset, as the model consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

RHYTHM = ("music_rhythm", "dance_rhythm")


@dataclass
class FeatureSet:
    """Pooled features and beat grids of N aligned music/dance clips (item i's music matches its dance).

    Shapes: ``music`` (N, S, Dm), ``dance`` (N, S, Dd), ``music_beat`` and ``dance_beat`` (N, S, K),
    all float32, with S segments and K beat slots per segment; beat grids are 0/1 at ``beat_fps``
    frames per second. ``groups`` names the source pair of each clip (used for pair-level splits and
    pair-level recall); it defaults to the clip id. ``music_rhythm`` and ``dance_rhythm`` (N, C, R) are the
    clips' rhythm arrays on the log-tempo axis (``beats.rhythm``), or None for data prepared without them.
    ``music_beats_per_bar`` (N,) is each song's metre from its downbeats (``MusicBeats.beats_per_bar``: 2, 3
    or 4; 0 where unknown), or None for data prepared without it.
    """

    ids: list[str]
    music: np.ndarray
    dance: np.ndarray
    music_beat: np.ndarray
    dance_beat: np.ndarray
    beat_fps: float = 10.0
    groups: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    music_rhythm: np.ndarray | None = None
    dance_rhythm: np.ndarray | None = None
    music_beats_per_bar: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.music_beats_per_bar is not None:
            self.music_beats_per_bar = np.asarray(self.music_beats_per_bar, dtype=np.float32)
            if self.music_beats_per_bar.shape != (n,) or not np.isfinite(self.music_beats_per_bar).all():
                raise DataError(
                    f"FeatureSet.music_beats_per_bar has shape {self.music_beats_per_bar.shape} or non-finite "
                    f"values; expected ({n},) beats per bar (0: unknown). Re-run `beatdance prepare`."
                )
        if (self.music_rhythm is None) != (self.dance_rhythm is None):
            raise DataError("FeatureSet has rhythm arrays for one modality only; give both or neither.")
        for name in ("music", "dance", "music_beat", "dance_beat") + (RHYTHM if self.has_rhythm else ()):
            arr = getattr(self, name)
            if arr.ndim != 3 or arr.shape[0] != n:
                raise DataError(f"FeatureSet.{name} has shape {arr.shape}; expected ({n}, segments, dim).")
            if not np.isfinite(arr).all():
                raise DataError(f"FeatureSet.{name} contains NaN or inf values; clean or re-extract the features.")
        if self.music_beat.shape != self.dance_beat.shape:
            raise DataError(
                f"music_beat {self.music_beat.shape} and dance_beat {self.dance_beat.shape} differ in shape."
            )
        if self.groups is None:
            self.groups = list(self.ids)
        elif len(self.groups) != n:
            raise DataError(f"FeatureSet.groups has {len(self.groups)} entries for {n} clips.")

    @property
    def has_rhythm(self) -> bool:
        return self.music_rhythm is not None

    def arrays(self, index: np.ndarray | slice, *, rhythm: bool) -> list[np.ndarray]:
        """The model's inputs for the clips at ``index``: music, dance, music_beat, dance_beat and, with
        ``rhythm``, music_rhythm and dance_rhythm (the order of ``BeatBlender.forward``)."""
        if rhythm and not self.has_rhythm:
            raise DataError("these features have no rhythm arrays; prepare them with this beatdance version.")
        names = ("music", "dance", "music_beat", "dance_beat") + (RHYTHM if rhythm else ())
        return [getattr(self, name)[index] for name in names]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_segments(self) -> int:
        return int(self.music.shape[1])

    @property
    def beat_slots(self) -> int:
        return int(self.music_beat.shape[2])

    @property
    def music_dim(self) -> int:
        return int(self.music.shape[2])

    @property
    def dance_dim(self) -> int:
        return int(self.dance.shape[2])

    def subset(self, index: np.ndarray | list[int]) -> FeatureSet:
        """The clips at positions ``index``, in that order."""
        idx = np.asarray(index, dtype=np.int64)
        assert self.groups is not None
        return FeatureSet(
            ids=[self.ids[i] for i in idx],
            music=self.music[idx],
            dance=self.dance[idx],
            music_beat=self.music_beat[idx],
            dance_beat=self.dance_beat[idx],
            beat_fps=self.beat_fps,
            groups=[self.groups[i] for i in idx],
            info=dict(self.info),
            music_rhythm=None if self.music_rhythm is None else self.music_rhythm[idx],
            dance_rhythm=None if self.dance_rhythm is None else self.dance_rhythm[idx],
            music_beats_per_bar=None if self.music_beats_per_bar is None else self.music_beats_per_bar[idx],
        )

    def beats_per_bar(self) -> np.ndarray:
        """(N,) beats per bar of each clip's song, 0 where unknown (also for data prepared without them)."""
        known = self.music_beats_per_bar
        return np.zeros(len(self), np.float32) if known is None else known
