"""The JSON shapes of the ``beatdance serve`` API (they make its OpenAPI schema at ``/openapi.json``)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, create_model

from ..library import Match

Modality = Literal["music", "dance"]


class ItemSide(BaseModel):
    """One modality of a library item: its file (basename), span in that file and tempo."""

    source: str | None
    start_s: float | None
    duration_s: float | None
    tempo_bpm: float | None
    media_url: str
    media_kind: Literal["audio", "video"]
    media_start_s: float
    media_end_s: float


class ItemOut(BaseModel):
    id: str
    group: str
    dance_kind: str | None
    music: ItemSide | None = None
    dance: ItemSide | None = None


class ItemsOut(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ItemOut]


class LibraryOut(BaseModel):
    path: str
    items: int
    model_variant: str
    embed_dim: int
    window_s: float
    index: str
    querybank: str
    dance_kinds: dict[str, int]
    settings: dict[str, Any]
    max_upload_mb: float
    upload_extensions: dict[str, list[str]]
    query_limits: dict[str, float]


class QueryOut(BaseModel):
    clip_id: str | None
    modality: Modality
    source: str | None
    start_s: float
    duration_s: float | None
    tempo_bpm: float | None
    beats_s: list[float]


class WindowOut(BaseModel):
    start_s: float
    best_combined: float


def _fields_of(cls: type, *, without: set[str]) -> dict[str, Any]:
    """Pydantic field definitions for the fields of dataclass ``cls`` (all required)."""
    hints = get_type_hints(cls)
    return {f.name: (hints[f.name], ...) for f in fields(cls) if f.name not in without}


# The fields of ``library.Match`` (one definition for the Python API, the CLI's --json and this service), plus
# where the web page plays the match and its beat plot.
MatchFields = create_model("MatchFields", **_fields_of(Match, without={"item"}))


class MatchOut(MatchFields):  # type: ignore[misc,valid-type]
    media: ItemSide
    plot_url: str


class SearchOut(BaseModel):
    direction: str
    query: QueryOut
    windows: list[WindowOut]
    settings: dict[str, Any]
    matches: list[MatchOut]
    seconds: float


class ErrorOut(BaseModel):
    detail: str


class ReloadOut(BaseModel):
    reloaded: bool
    path: str
    items: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 413, 415, 422)}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {**ERROR_RESPONSES, 503: {"model": ErrorOut}}
