"""The raw-media demo end to end on a tiny configuration: every stage runs and the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from beatdance.demo import DemoConfig, run_demo
from beatdance.library import Library
from beatdance.plots import describe_shift


def _stamps(out: Path) -> dict[str, int]:
    """Modification times of everything the stages write that a rerun must reuse: media, clips, weights, library."""
    folders = ("corpus", "videos", "store/clips", "run/last", "run/best", "library")
    files = [p for d in folders for p in (out / d).rglob("*") if p.is_file()]
    assert len(files) > 40
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in files}


def _assert_same_matches(a: list[dict], b: list[dict]) -> None:
    assert [m["id"] for m in a] == [m["id"] for m in b]
    assert [m["score"] for m in a] == pytest.approx([m["score"] for m in b], abs=1e-6)


@pytest.mark.slow
def test_demo_runs_every_stage_and_reruns_from_disk(tmp_path):
    cfg = DemoConfig(pairs=6, duration_s=20.5, epochs=1, queries=2, workers=1)
    summary = run_demo(out=tmp_path, config=cfg, show_progress=False, log=lambda *_: None)
    assert summary["prepare"]["clips"] == 18 and sum(summary["prepare"]["splits"].values()) == 18
    assert set(summary["evaluation"]["results"]) == {"none", "dis"}
    test_pairs = summary["prepare"]["splits"]["test"] // 3
    assert len(summary["queries"]) == min(test_pairs, cfg.queries) + 2
    assert [q["modality"] for q in summary["queries"][-2:]] == ["dance", "dance"]
    # Each reported query is what the library built by the demo answers for that file, and its truth rank is
    # where the query's own pair stands among those matches.
    lib = Library.open(tmp_path / "library")
    for q in summary["queries"][:-1]:  # the last is the video query (MediaPipe), checked by the service tests
        again = lib.search(**{q["modality"]: q["query"]}, top=5)
        _assert_same_matches(q["matches"], [{"id": m.id, "score": m.score} for m in again.matches])
        assert q["window_start_s"] == again.query["start_s"]
        assert {it.side(q["modality"]).file for it in lib.items if it.grp == q["truth_group"]} == {q["query"]}
        groups = [m["group"] for m in q["matches"]]
        assert q["truth_rank"] == (groups.index(q["truth_group"]) + 1 if q["truth_group"] in groups else None)
    music = [q for q in summary["queries"] if q["modality"] == "music"]
    top1 = [q["matches"][0]["beat_alignment"] for q in music]
    assert summary["top1_beat_alignment"]["m2d"] == pytest.approx(np.mean(top1))
    first = music[0]["matches"][0]
    assert summary["export"]["dance"] == lib.item(first["id"]).dance_file  # the export shows the first top match
    for name in (
        "report.md",
        "report.html",
        "demo_report.json",
        "plots/recall.png",
        "plots/top_match_beats.png",
        "top_match.mp4",
        "library/library.json",
    ):
        assert (tmp_path / name).is_file(), name
    report = (tmp_path / "report.md").read_text()
    assert "| m2d | dis |" in report and "plots/top_match_beats.png" in report
    page = (tmp_path / "report.html").read_text()
    assert "{'" not in report and "`" not in page  # no raw Python dicts, no Markdown code marks in the HTML
    assert "[top_match.mp4](top_match.mp4)" in report and '<video controls src="top_match.mp4"' in page
    assert describe_shift(-summary["export"]["offset_s"]) in report  # the words of the export plot's title
    with av.open(str(tmp_path / "top_match.mp4")) as c:
        assert c.streams.video and c.streams.audio
    # A rerun reuses what is on disk: nothing is synthesized, prepared, trained or indexed again, and it reports
    # the same results.
    before = _stamps(tmp_path)
    history = (tmp_path / "run" / "history.jsonl").read_text()
    again = run_demo(out=tmp_path, config=cfg, show_progress=False, log=lambda *_: None)
    assert again["prepare"]["written"] == 0 and _stamps(tmp_path) == before
    assert (tmp_path / "run" / "history.jsonl").read_text() == history
    assert again["evaluation"] == summary["evaluation"]
    for q, q_again in zip(summary["queries"], again["queries"], strict=True):
        _assert_same_matches(q["matches"], q_again["matches"])
    assert json.loads((tmp_path / "demo_report.json").read_text())["seconds"] == again["seconds"]
