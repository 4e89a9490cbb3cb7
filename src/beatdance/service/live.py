"""The library a long-running server answers with, swapped for a fresh one when its folder changes on disk.

``beatdance index --add`` rewrites a library while ``serve`` runs (a new version folder behind the library's
path). :meth:`LiveLibrary.current` looks at most once a second whether the path now names another
``library.json`` (a ``stat``, no reading) and, when it does, opens the new library in a background thread
and swaps it in as one reference: requests in flight finish on the library they started with, and nothing
waits for the opening. :meth:`LiveLibrary.reload` does the same at once (``POST /api/reload``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import BeatDanceError
from ..library import Library

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0  # how often a request may look whether the library changed on disk


def freeze_heap() -> None:
    """Leave the objects alive now (modules, the model, the library) out of Python's cyclic garbage collection.

    A full collection walks every tracked object: with torch, librosa and FastAPI loaded that is some 300,000
    and 0.2 s, a stall that every request in flight waits out, several times a minute under load. Frozen
    objects are still freed by reference counting when dropped (an old library after a reload).
    """
    gc.collect()
    gc.freeze()


def _stamp(path: Path) -> tuple[Any, ...] | None:
    """What changes when a library folder is rewritten: the folder its path resolves to and its head file."""
    try:
        st = os.stat(path / "library.json")
    except OSError:
        return None
    return os.path.realpath(path), st.st_ino, st.st_mtime_ns, st.st_size


class LiveLibrary:
    """The library at ``path`` (opened now; CheckpointError when it is not one), kept current."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        self.path = path
        self.device = device
        self._stamp = _stamp(path)
        self.library = Library.open(path, device=device)
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> Library:
        """The library to answer with; when its folder changed on disk, a fresh one is opened in the background."""
        now = time.monotonic()
        if now - self._checked_at >= CHECK_EVERY_S:
            self._checked_at = now
            if _stamp(self.path) != self._stamp and not self._lock.locked():
                threading.Thread(target=self._reload_in_background, daemon=True, name="beatdance-reload").start()
        return self.library

    def reload(self) -> bool:
        """Open the library folder again if it changed on disk and swap it in; False when it had not changed."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return False
            library = Library.open(self.path, device=self.device)
            self.library, self._stamp = library, stamp
        freeze_heap()
        log.info("reloaded library %s: %d items", self.path, len(library))
        return True

    def _reload_in_background(self) -> None:
        try:
            self.reload()
        except BeatDanceError as exc:  # caught mid-write or damaged: keep serving the one already open
            log.warning("library %s changed but cannot be opened (%s); still serving the previous one", self.path, exc)
