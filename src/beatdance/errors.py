"""The one exception family of beatdance.

Messages follow librosa's style: the offending value, what was expected, and how to fix it.
"""

from __future__ import annotations


class BeatDanceError(Exception):
    """Base class of every error beatdance raises on purpose."""


class ParameterError(BeatDanceError, ValueError):
    """A function or command got an argument it cannot use."""


class MediaError(BeatDanceError):
    """A media file (audio, video, keypoints) cannot be decoded or has no usable content."""


class DataError(BeatDanceError):
    """A dataset or feature file has a wrong layout, key, shape, dtype or value."""


class CheckpointError(BeatDanceError):
    """A checkpoint, library or store does not match the config it is used with."""


class MissingWeightsError(BeatDanceError):
    """An optional pretrained encoder was asked for but its local weights are absent."""


class SplitNotFoundError(DataError, FileNotFoundError):
    """A dataset has no list file for the requested split (also a FileNotFoundError, so callers can treat it as optional)."""


class KernelCacheError(BeatDanceError):
    """librosa's numba kernels cannot be compiled or loaded from their cache folder (``NUMBA_CACHE_DIR``)."""


class LimitError(MediaError):
    """A query file exceeds a resource limit (duration, video pixels × frames, keypoint values); the service
    answers 413. The message names the limit and the option that raises it."""
