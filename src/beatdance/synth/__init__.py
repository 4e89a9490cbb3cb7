"""Synthetic data with known ground truth: features (:mod:`.features`) and media (songs, dances, videos)."""

from .audio import SynthMusic, synthesize_music
from .media import SynthPair, synthesize_pair, write_corpus
from .motion import synthesize_motion
from .render import render_video
from .styles import STYLES

__all__ = [
    "STYLES",
    "SynthMusic",
    "SynthPair",
    "render_video",
    "synthesize_motion",
    "synthesize_music",
    "synthesize_pair",
    "write_corpus",
]
