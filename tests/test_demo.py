"""The raw-media demo end to end on a tiny configuration: every stage runs and the report is written."""

from __future__ import annotations

import json

import av
import pytest

from beatdance.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_reruns_from_disk(tmp_path):
    cfg = DemoConfig(pairs=6, duration_s=20.5, epochs=1, queries=2, workers=1)
    summary = run_demo(out=tmp_path, config=cfg, show_progress=False, log=lambda *_: None)
    assert summary["prepare"]["clips"] == 18 and sum(summary["prepare"]["splits"].values()) == 18
    assert set(summary["evaluation"]["results"]) == {"none", "dis"}
    test_pairs = summary["prepare"]["splits"]["test"] // 3
    assert len(summary["queries"]) == min(test_pairs, cfg.queries) + 2
    assert [q["modality"] for q in summary["queries"][-2:]] == ["dance", "dance"]
    assert all(q["matches"][0]["rank"] == 1 for q in summary["queries"])
    for name in ("report.md", "report.html", "demo_report.json", "plots/recall.png", "plots/top_match_beats.png",
                 "top_match.mp4", "library/library.json"):
        assert (tmp_path / name).is_file(), name
    report = (tmp_path / "report.md").read_text()
    assert "| m2d | dis |" in report and "plots/top_match_beats.png" in report
    with av.open(str(tmp_path / "top_match.mp4")) as c:
        assert c.streams.video and c.streams.audio
    again = run_demo(out=tmp_path, config=cfg, show_progress=False, log=lambda *_: None)
    assert again["prepare"]["written"] == 0 and again["stage_seconds"]["train"] < summary["stage_seconds"]["train"]
    assert json.loads((tmp_path / "demo_report.json").read_text())["seconds"] == again["seconds"]
