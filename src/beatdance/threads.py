"""Thread pools sized to the cores this process may use, and OpenMP threads that sleep instead of spinning.

On a shared 2-core machine idle OpenMP workers that busy-wait (libgomp's default spin before sleeping)
burn the cores other jobs need: four trainings side by side ran 4.8x slower than one, using 1.9x its CPU
time. ``OMP_WAIT_POLICY=PASSIVE`` (set when beatdance is imported, unless the user set it) makes them
sleep; :func:`limited_threads` caps torch, BLAS and OpenMP pools for a block of work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ParameterError


def configure_waiting() -> None:
    """Idle OpenMP threads sleep (must run before torch or numpy start their pools; a user's setting wins)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """``threads``, or the usable cores when None; an explicit value must be >= 1."""
    if threads is None:
        return usable_cores()
    if threads < 1:
        raise ParameterError(f"threads={threads} must be >= 1 (or unset: the {usable_cores()} usable cores).")
    return int(threads)


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Cap the BLAS, OpenMP and torch thread pools at ``threads`` while the block runs (None: leave them).

    torch's pool is capped only when torch is already imported: a numpy-only search does not load it.
    """
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
