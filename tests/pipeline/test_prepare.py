"""`prepare` on synthetic media: clips written, bad inputs reported, a rerun redoes nothing."""

from __future__ import annotations

import csv
import shutil

import pytest

from beatdance.features.store import FeatureStore
from beatdance.pipeline.prepare import PrepareConfig, prepare, window_starts
from beatdance.synth.media import write_corpus


def test_window_starts_cover_only_the_overlap():
    assert window_starts(dance_duration_s=35, music_duration_s=100, offset_s=0, window_s=10, hop_s=10) == [0, 10, 20]
    assert window_starts(dance_duration_s=30, music_duration_s=25, offset_s=-5, window_s=10, hop_s=5) == [5, 10, 15, 20]
    assert window_starts(dance_duration_s=8, music_duration_s=100, offset_s=0, window_s=10, hop_s=10) == []


def test_prepare_mocap_corpus_reports_bad_inputs_and_resumes(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(out_dir=corpus, num_pairs=2, seed=3, duration_s=21.0, video=False, show_progress=False)
    (corpus / "broken.mp4").write_bytes(b"")  # zero bytes
    shutil.copy(corpus / "pair_001.npz", corpus / "late.npz")
    with open(corpus / "manifest.csv", "a", newline="") as fh:
        csv.writer(fh).writerow(["pair_000.wav", "late.npz", "15.0"])  # overlap shorter than a window
    out = tmp_path / "store"
    report = prepare(inputs=[corpus, corpus / "broken.mp4"], out=out, config=PrepareConfig(), show_progress=False)
    assert report.clips_written == 4
    reasons = " | ".join(s["reason"] for s in report.skipped)
    assert "less than one" in reasons
    assert any("broken.mp4" in s["input"] for s in report.skipped)
    store = FeatureStore.open(out)
    assert len(store.ids()) == 4
    rec = store.get(store.ids()[0])
    assert rec.music.shape[1] > 0 and rec.dance_beat.shape == (100,)
    again = prepare(inputs=[corpus], out=out, config=PrepareConfig(), show_progress=False)
    assert again.clips_written == 0 and again.clips_existing == 4


@pytest.mark.slow
def test_prepare_rendered_videos_with_mediapipe(tmp_path):
    corpus = tmp_path / "videos"
    write_corpus(out_dir=corpus, num_pairs=1, seed=0, duration_s=10.5, video=True, show_progress=False)
    (corpus / "manifest.csv").unlink()
    report = prepare(inputs=[corpus / "pair_000.mp4"], out=tmp_path / "store", show_progress=False)
    assert report.clips_written == 1, report.skipped
    meta = FeatureStore.open(tmp_path / "store").meta(FeatureStore.open(tmp_path / "store").ids()[0])
    assert meta["dance_kind"] == "video" and meta["music_tempo_bpm"] > 0


@pytest.mark.data
def test_discovers_every_dance_with_melody_pair(shared_data):
    from beatdance.pipeline.inputs import discover_pairs

    pairs, rejected = discover_pairs([shared_data / "dance_with_melody"])
    assert len(pairs) == 32 and all(p.dance_kind == "dwm" for p in pairs)
    assert not [r for r in rejected if "manifest" in r.input]
