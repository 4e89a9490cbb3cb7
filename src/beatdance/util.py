"""Small shared helpers: atomic file writes, JSON I/O, seeding and progress bars."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import ParameterError

T = TypeVar("T")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads write files
    os.umask(mask)
    return mask


_UMASK = _read_umask()


# Directories are swapped in through a link: NAME is a relative symlink to a sibling ``.NAME.v-STAMP`` folder.
# A write fills ``.NAME.tmp-PID-*``, fsyncs it, renames it to the next version (a version folder is complete by
# its name) and os.replaces a fresh link onto NAME, so NAME opens as the old or the new folder at every instant.
# The version replaced last stays for _REPLACED_KEEP_S, so that a reader that resolved NAME just before a swap can
# finish reading it; later writes delete it, every older version (so at most two copies are ever on disk, even for a
# checkpoint saved every few seconds), and the temps of writers that no longer run.
_VERSION = ".v-"
_STAMP_DIGITS = 20
_REPLACED_KEEP_S = 60.0


def resolve_dir(path: str | os.PathLike[str]) -> Path:
    """The folder that ``path`` opens as now: the version its link names (read it there, once, so that every
    file comes from one version), or ``path`` itself (a plain folder, or nothing). A conversion of a plain
    folder that a killed writer left half done is finished first."""
    path = _managed_path(Path(path))
    if not os.path.lexists(path) and (_intent(path).exists() or _legacy_aside(path).is_dir()):
        with _parent_locked(path):
            _finish_interrupted(path)
    return path.parent / os.readlink(path) if path.is_symlink() else path


def write_dir_atomically(path: str | os.PathLike[str], fill: Callable[[Path], None]) -> None:
    """Create directory ``path`` by calling ``fill(tmp_dir)`` and swapping the finished folder in atomically.

    ``path`` becomes a link to a new version folder; readers see the old or the new folder, never none or a
    part (:func:`resolve_dir`). A plain folder at ``path`` (an older beatdance's, or the user's) is converted
    first. Writers in one parent folder take turns for the swap, under a lock on that folder.
    """
    path = _managed_path(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        fill(tmp)
        _seal_tree(tmp)
        with _parent_locked(path):
            _finish_interrupted(path)
            _convert_plain_dir(path)
            version = _next_version(path)
            os.rename(tmp, version)
            _fsync(path.parent)
            _point(path, version)
            _remove_debris(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _managed_path(path: Path) -> Path:
    """``path`` with the user's own symlinks at its name followed (a link to a version folder is ours)."""
    for _ in range(32):
        if not path.is_symlink() or _is_version(path, os.readlink(path)):
            return path
        path = path.parent / os.readlink(path)
    raise ParameterError(f"{path} is a chain of more than 32 symlinks; point it at a folder.")


def _is_version(path: Path, name: str) -> bool:
    stamp = name[len(f".{path.name}{_VERSION}") :]
    return name.startswith(f".{path.name}{_VERSION}") and len(stamp) == _STAMP_DIGITS and stamp.isdigit()


def _versions(path: Path) -> list[Path]:
    """The version folders of ``path``, oldest first."""
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}{_VERSION}*") if _is_version(path, p.name))


def _intent(path: Path) -> Path:
    """Names the version folder a plain folder is being renamed to, while it is (see :func:`_convert_plain_dir`)."""
    return path.with_name(f".{path.name}.converting")


def _legacy_aside(path: Path) -> Path:
    """Where an older beatdance's two-rename swap put the previous folder; a kill between them left no ``path``."""
    return path.with_name(f".{path.name}.old")


def _finish_interrupted(path: Path) -> None:
    """Complete a conversion (or an older beatdance's swap) that a killed process left without ``path``."""
    intent = _intent(path)
    if intent.exists():
        version = path.with_name(intent.read_text().strip())
        if not os.path.lexists(path) and _is_version(path, version.name) and version.is_dir():
            _point(path, version)
        intent.unlink()
    aside = _legacy_aside(path)
    if aside.is_dir():
        if os.path.lexists(path):
            shutil.rmtree(aside)
        else:
            os.replace(aside, path)


def _convert_plain_dir(path: Path) -> None:
    """Make a plain folder at ``path`` a version that ``path`` links to. The one step that is not atomic: the
    intent file written before the rename lets the next reader or writer finish a conversion killed between
    the rename and the link (a reader never sees a half-written folder, only, for that moment, no ``path``)."""
    if path.is_symlink() or not path.exists():
        return
    if not path.is_dir():
        raise ParameterError(f"{path} is a file, not a folder; move it away or pick another output path.")
    version = _next_version(path)
    with open(_intent(path), "w", encoding="utf-8") as fh:
        fh.write(version.name)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(path, version)
    _point(path, version)
    _intent(path).unlink()


def _next_version(path: Path) -> Path:
    """A version name after every existing one (the clock can step back; stamps must not)."""
    last = [int(v.name[-_STAMP_DIGITS:]) + 1 for v in _versions(path)[-1:]]
    return path.with_name(f".{path.name}{_VERSION}{max([time.time_ns(), *last]):0{_STAMP_DIGITS}d}")


def _point(path: Path, version: Path) -> None:
    """Atomically make ``path`` a relative link to sibling ``version`` (a temp link renamed onto it)."""
    link = path.with_name(f".{path.name}.link-{os.getpid()}-{secrets.token_hex(4)}")
    os.symlink(version.name, link)
    os.replace(link, path)
    _fsync(path.parent)


def _remove_debris(path: Path) -> None:
    """Delete every replaced version but the last one, that one too once it was replaced more than
    _REPLACED_KEEP_S ago (a version was replaced when the next one was made: its stamp), and the temp folders
    and links of writers that no longer run."""
    versions = _versions(path)
    current = os.readlink(path)
    cutoff_ns = time.time_ns() - int(_REPLACED_KEEP_S * 1e9)
    replaced = [(v, newer) for v, newer in zip(versions, versions[1:]) if v.name != current]
    for i, (version, newer) in enumerate(replaced):
        if i < len(replaced) - 1 or int(newer.name[-_STAMP_DIGITS:]) < cutoff_ns:
            shutil.rmtree(version, ignore_errors=True)
    for p in path.parent.glob(f".{glob.escape(path.name)}.*"):
        kind, _, rest = p.name[len(f".{path.name}.") :].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "link") and pid.isdigit() and not _alive(int(pid)):
            if p.is_symlink():
                p.unlink()
            else:
                shutil.rmtree(p, ignore_errors=True)


@contextmanager
def _parent_locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder holding ``path`` (swaps and repairs take turns; readers do not wait)."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's or a folder's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal_tree(folder: Path) -> None:
    """Give every file and folder under ``folder`` the usual permissions (mkdtemp makes 0700 and safetensors
    writes 0600) and flush it to disk, so a version is whole before it is swapped in."""
    for root, _, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~_UMASK)
            _fsync(os.path.join(root, name))
        os.chmod(root, 0o777 & ~_UMASK)
        _fsync(root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress(
    items: Iterable[T] | None = None, *, desc: str, total: int | None = None, initial: int = 0, enabled: bool = True
) -> Any:
    """A tqdm progress bar on stderr: iterate it over ``items``, or call ``.update(n)`` when ``items`` is None."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, initial=initial, disable=not enabled, dynamic_ncols=True, leave=False)
