"""benchmarks/tempo_audit.py on a tiny store whose tempos are known: deviations, re-measured peaks, tempo ranks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_benchmark, put_split_clip

from beatdance.beats.rhythm import RhythmConfig, tempo_bump
from beatdance.features.store import FeatureStore
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features

# (pair, music BPM, dance BPM): three waltzes at a third of their song, one 3 % fast; a rumba at half.
PAIRS = (("DANCE_W_1", 87.0, 29.0), ("DANCE_W_2", 84.0, 28.84), ("DANCE_W_3", 96.0, 32.0), ("DANCE_R_1", 90.0, 45.0))


@pytest.fixture(scope="module")
def audit():
    return load_benchmark("tempo_audit")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    split = generate_synthetic_features(
        SynthFeatureConfig(num_train=2 * len(PAIRS), num_val=2, num_test=2, music_dim=6, dance_dim=4, seed=1)
    )["train"]
    rhythm = RhythmConfig()
    out = FeatureStore.create(
        tmp_path_factory.mktemp("audit") / "store",
        config={"origin": "test", "grid_fps": 10.0, "rhythm": rhythm.to_dict()},
    )
    for i in range(len(split.ids)):
        group, music_bpm, dance_bpm = PAIRS[i // 2]
        # The dance's track tempogram peaks at its tempo and at 3 x it; the stored tempo is 1 % off the peak.
        tempogram = tempo_bump(tempo_bpm=dance_bpm, config=rhythm) + 0.5 * tempo_bump(
            tempo_bpm=3 * dance_bpm, config=rhythm
        )
        put_split_clip(
            out,
            f"{group}__{i}",
            split,
            i,
            music_rhythm=np.stack([tempo_bump(tempo_bpm=music_bpm, config=rhythm)] * 3),
            dance_rhythm=np.stack([tempo_bump(tempo_bpm=dance_bpm, config=rhythm), tempogram, tempogram]),
            meta={
                "group": group,
                "music_tempo_bpm": music_bpm,
                "dance_tempo_bpm": dance_bpm * 1.01,
                "music_beats_per_bar": 3 if "_W_" in group else 4,
            },
        )
    return out


def test_peak_near_finds_a_tempo_between_bins(audit):
    rhythm = RhythmConfig()
    tempogram = tempo_bump(tempo_bpm=93.3, config=rhythm) + tempo_bump(tempo_bpm=60.0, config=rhythm)
    assert audit.peak_near(tempogram, bpm=90.0, rhythm=rhythm) == pytest.approx(93.3, rel=0.005)
    assert audit.peak_near(tempogram, bpm=62.0, rhythm=rhythm) == pytest.approx(60.0, rel=0.005)


def test_pair_rows_give_each_estimate_and_its_deviation(audit, store):
    rows = {row["pair"]: row for row in audit.pair_rows(store)}
    assert list(rows) == sorted(p for p, _, _ in PAIRS)
    w2 = rows["DANCE_W_2"]
    assert (w2["style"], w2["ratio"], w2["beats_per_bar"]) == ("W", 3.0, 3)
    assert w2["dance_bpm"]["stored"] == pytest.approx(28.84 * 1.01)
    # The tempogram's own peaks hold the true dance tempo: 3 x 28.84 = 86.52 BPM, 3 % above the 84-BPM song.
    for kind in ("tempogram", "tempogram x ratio"):
        assert w2["dance_bpm"][kind] == pytest.approx(28.84, rel=0.005)
        assert w2["deviation_pct"][kind] == pytest.approx(3.0, abs=0.5)
    assert w2["deviation_pct"]["stored"] == pytest.approx(100 * (28.84 * 1.01 * 3 / 84 - 1))
    assert rows["DANCE_R_1"]["ratio"] == 2.0 and rows["DANCE_W_3"]["deviation_pct"]["tempogram"] == pytest.approx(
        0, abs=0.5
    )


def test_tempo_ranks_use_the_other_pairs_ratio(audit, store):
    ranks = audit.tempo_ranks(audit.pair_rows(store))
    assert set(ranks) == {"W"}  # a style with one pair has no rank
    w = ranks["W"]
    # Predicted songs (dance x 1.01 x 3): 87.87 -> 87 first; 87.39 -> 87 before 84, so W_2 ranks 2nd; 96.96 -> 96.
    assert (w["pairs"], w["chance"]) == (3, 2.0)
    assert w["mean_rank"] == pytest.approx((1 + 2 + 1) / 3)
    assert w["songs_within_1pct"] == 1.0


@pytest.mark.slow
def test_audit_of_a_real_pair_reads_its_tempos_and_windows(audit, shared_data, tmp_path):
    # One real waltz (DANCE_W_5: 83.9 BPM, its dance one bar at 28.0 BPM), prepared as `make bench` does.
    from beatdance.pipeline.prepare import PrepareConfig, prepare

    folder = shared_data / "dance_with_melody" / "DANCE_W_5"
    prepare(
        inputs=[folder], out=tmp_path / "store", config=PrepareConfig(window_s=10.0, hop_s=5.0), show_progress=False
    )
    store = FeatureStore.open(tmp_path / "store")
    (row,) = audit.pair_rows(store)
    assert (row["pair"], row["style"], row["ratio"], row["beats_per_bar"]) == ("DANCE_W_5", "W", 3.0, 3)
    assert row["music_bpm"] == pytest.approx(83.9, abs=0.5)
    assert all(abs(d) < 3.0 for d in row["deviation_pct"].values())  # the three estimates agree with the song
    energy = audit.energy_correlations(store)
    assert list(energy) == ["DANCE_W_5"] and -1.0 <= energy["DANCE_W_5"] <= 1.0
