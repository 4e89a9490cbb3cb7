"""librosa's numba kernels are compiled by one process, verified once, and repaired when their cache is corrupt.

librosa compiles its numba kernels with ``cache=True`` on first use (many of them at import). Processes that
compile them at the same time into one cache folder can leave it corrupt (an index pointing at another
overload's machine code), and from then on every process that loads it crashes with a segmentation fault.
So the cache lives in one per-user folder (``NUMBA_CACHE_DIR``, set when beatdance is imported unless the
user set it), and before any process loads librosa (the ``hpss`` option calls it first), :func:`ensure_kernels`
makes sure it is verified: under a file lock, a child process runs every kernel beatdance uses (compiling the missing ones)
and builds matplotlib's font cache; if the child crashes, the cache is cleared and compiled again. A stamp
in the folder records the verified files, so later calls only compare file sizes and times (a few ms).
Since beatdance computes its music features in numpy, only the ``hpss`` option still loads these kernels.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import KernelCacheError

_CACHE_SUFFIXES = (".nbi", ".nbc")
_CHILD = "from beatdance.jitcache import exercise_kernels; exercise_kernels()"
_MPL_FOLDER_VARIABLES = ("MPLCONFIGDIR", "XDG_CACHE_HOME", "HOME")
_CHECK_TIMEOUT_S = 900.0  # a first compile (the HPSS kernels) takes about 20 s on 2 free cores


def configure_environment() -> None:
    """Point numba's cache at the per-user folder, unless ``NUMBA_CACHE_DIR`` is set (call before numba is imported)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(base, "beatdance", "numba"))


def cache_dir() -> Path:
    """The numba cache folder every beatdance process and its workers use."""
    configure_environment()
    return Path(os.environ["NUMBA_CACHE_DIR"])


def ensure_kernels() -> None:
    """Make sure the kernel cache is compiled and loads without crashing, before any worker uses it.

    Free when the cache is unchanged since it was verified for this environment; otherwise one process
    (the others wait on a file lock) checks it in a child process, recompiling it once if the check dies.
    """
    folder = cache_dir()
    if is_verified(folder=folder):
        return
    with _locked(folder=folder):
        if is_verified(folder=folder):
            return
        if not _cache_files(folder=folder):
            _say(f"compiling librosa's numba kernels once into {folder} (about 20 s)")
        failure = _check()
        if failure is not None:
            _say(f"the numba kernel cache in {folder} was corrupt (a check {failure}); cleared it, compiling again")
            clear_cache(folder=folder)
            failure = _check()
        if failure is not None:
            raise KernelCacheError(
                f"librosa's numba kernels cannot be compiled into {folder}: a fresh compile {failure}. "
                "Check that `python -c 'import librosa.beat'` works, or set NUMBA_CACHE_DIR to another folder."
            )
        _write_stamp(folder=folder)


def is_verified(*, folder: Path) -> bool:
    """True when the cache in ``folder`` was verified for this environment and no file changed since."""
    try:
        stamp = json.loads(_stamp_path(folder=folder).read_text())
    except (OSError, ValueError):
        return False
    font_cache = stamp.get("font_cache")
    return (
        stamp.get("environment") == _environment()
        and stamp.get("files") == _cache_files(folder=folder)
        and (font_cache is None or os.path.exists(font_cache))
    )


def clear_cache(*, folder: Path) -> None:
    """Delete every numba cache file under ``folder`` and the stamp (the lock file stays)."""
    for path in folder.rglob("*"):
        if path.suffix in _CACHE_SUFFIXES or ".tmp." in path.name:
            path.unlink(missing_ok=True)
    _stamp_path(folder=folder).unlink(missing_ok=True)


def exercise_kernels() -> None:
    """Run librosa on a click track the way beatdance still uses it, and build matplotlib's font cache (the child's job).

    Beats, onsets and the audio features run in numpy (``media.spectral``); librosa, and with it numba,
    is only imported by the percussive-separation option (``MusicBeatConfig.hpss``).
    """
    import librosa.effects
    import matplotlib.font_manager  # noqa: F401  (builds the font cache on first import)
    import numpy as np

    sr, seconds = 22050, 10.0
    y = np.zeros(int(sr * seconds), dtype=np.float32)
    y[:: sr // 2] = 1.0  # a click every 0.5 s
    # librosa directly, not through track_music_beats: that calls ensure_kernels, whose lock this child's parent
    # holds. Any margin compiles the same kernels (numba compiles per argument type).
    librosa.effects.percussive(y, margin=1.0)


def _check() -> str | None:
    """Run :func:`exercise_kernels` in a child; None when it succeeded, else how it failed."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=_CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"ran past {_CHECK_TIMEOUT_S:g} s"
    if proc.returncode < 0:
        return f"died with {signal.Signals(-proc.returncode).name}"
    if proc.returncode > 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"failed with exit status {proc.returncode}: {last}"
    return None


def _say(message: str) -> None:
    print(f"beatdance: {message}", file=sys.stderr, flush=True)


@contextmanager
def _locked(*, folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder``'s lock file, creating both (other beatdance processes wait here)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise KernelCacheError(
            f"cannot write to the numba cache folder {folder} ({exc}); set NUMBA_CACHE_DIR to a writable folder."
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stamp_path(*, folder: Path) -> Path:
    """One stamp per Python environment, so environments sharing a cache folder do not take turns."""
    return folder / f"verified-{hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]}.json"


def _environment() -> dict[str, object]:
    """What the verified cache depends on besides its files: this Python, the installed numba and librosa, and
    what decides matplotlib's cache folder. Packages are told apart by their files (a few ms; reading their
    versions from the metadata takes 50)."""
    return {
        "prefix": sys.prefix,
        "python": sys.version.split()[0],
        **{name: _installed(package=name) for name in ("numba", "librosa")},
        **{name: os.environ.get(name) for name in _MPL_FOLDER_VARIABLES},
    }


def _installed(*, package: str) -> list[object]:
    """Where ``package`` is installed and when its ``__init__.py`` was written (an upgrade or reinstall rewrites it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise KernelCacheError(f"{package} is not installed in {sys.prefix}; reinstall beatdance (`make install`).")
    return [spec.origin, os.stat(spec.origin).st_mtime_ns]


def _cache_files(*, folder: Path) -> dict[str, list[int]]:
    """Size and modification time (ns) of every numba cache file under ``folder``, by relative path."""
    files: dict[str, list[int]] = {}
    for root, _, names in os.walk(folder):
        for name in filter(lambda n: n.endswith(_CACHE_SUFFIXES), names):
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:  # deleted while we looked
                continue
            files[os.path.relpath(path, folder)] = [st.st_size, st.st_mtime_ns]
    return files


def _font_cache() -> str | None:
    """matplotlib's font cache file; None where matplotlib has no writable cache folder (it then uses a temporary one)."""
    import matplotlib
    from matplotlib.font_manager import FontManager

    path = Path(matplotlib.get_cachedir()) / f"fontlist-v{FontManager.__version__}.json"
    return str(path) if path.is_file() else None


def _write_stamp(*, folder: Path) -> None:
    from .util import atomic_write_json

    atomic_write_json(
        _stamp_path(folder=folder),
        {"environment": _environment(), "font_cache": _font_cache(), "files": _cache_files(folder=folder)},
    )
