"""Searchable libraries of music and dance clips: build (``build_library``), open and search (``Library``)."""

from .catalog import Item
from .library import IndexReport, Library, LibraryConfig, Match, SearchResult, build_library, write_library

__all__ = ["IndexReport", "Item", "Library", "LibraryConfig", "Match", "SearchResult", "build_library", "write_library"]
