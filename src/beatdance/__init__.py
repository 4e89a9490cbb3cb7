"""beatdance: beat-aware music <-> dance retrieval (BeatDance, ICMR 2024) that runs offline on CPU."""

__version__ = "0.1.0"
