"""``beatdance serve``: a FastAPI service and web page over a library (see :func:`create_app`).

``create_app`` is imported on first use, so that the extraction workers (``beatdance.service.worker``)
start without loading the web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
