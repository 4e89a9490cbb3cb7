"""Searchable libraries of music and dance clips: build (``build_library``), open and search (``Library``)."""

from .build import IndexReport, build_library, write_library
from .catalog import Item
from .config import LibraryConfig
from .library import Library
from .query import Match, SearchResult

__all__ = ["IndexReport", "Item", "Library", "LibraryConfig", "Match", "SearchResult", "build_library", "write_library"]
