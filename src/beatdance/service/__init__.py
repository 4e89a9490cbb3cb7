"""``beatdance serve``: a FastAPI service and web page over a library (see :func:`create_app`)."""

from .app import create_app

__all__ = ["create_app"]
