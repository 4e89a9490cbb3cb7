"""beatdance: beat-aware music <-> dance retrieval (BeatDance, ICMR 2024) that runs offline on CPU."""

from .jitcache import configure_environment
from .threads import configure_waiting

__version__ = "0.1.0"

configure_environment()  # before anything imports numba: librosa's kernels go to one per-user cache folder
configure_waiting()  # before torch or numpy start OpenMP pools: idle threads sleep instead of spinning
