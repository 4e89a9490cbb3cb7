"""Small shared helpers: atomic file writes, JSON I/O, seeding and progress bars."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

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


def recover_interrupted_swap(path: str | os.PathLike[str]) -> None:
    """Put back a directory that an interrupted :func:`write_dir_atomically` left aside: it moves the previous
    directory to ``.NAME.old`` and then renames the new one onto ``path``, so a process killed between the
    two renames leaves no ``path``, only the complete previous directory under ``.NAME.old``."""
    path = Path(path)
    aside = path.with_name(f".{path.name}.old")
    if not path.exists() and aside.is_dir():
        os.replace(aside, path)


def _remove_orphaned_temps(path: Path) -> None:
    """Delete ``.NAME.tmp-PID-*`` folders of writers that no longer run (killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_dir_atomically(path: str | os.PathLike[str], fill: Any) -> None:
    """Create directory ``path`` by calling ``fill(tmp_dir)`` and renaming it into place.

    Before writing, a swap that a killed process left half done is repaired (:func:`recover_interrupted_swap`)
    and temporary folders of writers that no longer run are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(path)
    _remove_orphaned_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        fill(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def progress(items: Iterable[T] | None = None, *, desc: str, total: int | None = None, initial: int = 0,
             enabled: bool = True) -> Any:
    """A tqdm progress bar on stderr: iterate it over ``items``, or call ``.update(n)`` when ``items`` is None."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, initial=initial, disable=not enabled, dynamic_ncols=True, leave=False)
