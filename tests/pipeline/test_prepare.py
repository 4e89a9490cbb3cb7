"""`prepare` on synthetic media: clips written, bad inputs reported, a rerun redoes nothing."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
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
    again = prepare(inputs=[corpus], out=out, config=PrepareConfig(), show_progress=False, workers=2)
    assert again.clips_written == 0 and again.clips_existing == 4
    parallel = prepare(
        inputs=[corpus], out=tmp_path / "parallel", config=PrepareConfig(), show_progress=False, workers=2
    )
    assert parallel.clips_written == 4
    assert FeatureStore.open(tmp_path / "parallel").ids() == store.ids()


@pytest.mark.slow
def test_prepare_rendered_videos_with_mediapipe(tmp_path):
    corpus = tmp_path / "videos"
    write_corpus(out_dir=corpus, num_pairs=1, seed=0, duration_s=10.5, video=True, show_progress=False)
    (corpus / "manifest.csv").unlink()
    report = prepare(inputs=[corpus / "pair_000.mp4"], out=tmp_path / "store", show_progress=False)
    assert report.clips_written == 1, report.skipped
    meta = FeatureStore.open(tmp_path / "store").meta(FeatureStore.open(tmp_path / "store").ids()[0])
    assert meta["dance_kind"] == "video" and meta["music_tempo_bpm"] > 0
    # the default tracker reads the metre from the downbeats; the song's bars are stored with the clip
    assert meta["music_beats_per_bar"] in (2, 3, 4) and set(meta["music_bar_contrasts"]) == {"2", "3", "4"}


@pytest.mark.data
def test_discovers_every_dance_with_melody_pair(shared_data):
    from beatdance.pipeline.inputs import discover_pairs

    pairs, rejected = discover_pairs([shared_data / "dance_with_melody"])
    assert len(pairs) == 32 and all(p.dance_kind == "dwm" for p in pairs)
    assert not [r for r in rejected if "manifest" in r.input]


@pytest.mark.slow
def test_killed_prepare_resumes_without_recomputing(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    corpus = tmp_path / "corpus"
    write_corpus(out_dir=corpus, num_pairs=8, seed=5, duration_s=31.0, video=False, show_progress=False)
    cmd = [sys.executable, "-m", "beatdance.cli.__main__", "prepare", str(corpus), "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "clips").glob("*.safetensors"))) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (killed / "clips").glob("*.safetensors")}
    assert 3 <= len(done_before) < 24, "the run was not interrupted half-way"
    subprocess.run([*cmd, "--out", str(killed)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full = tmp_path / "full"
    subprocess.run([*cmd, "--out", str(full)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a, b = FeatureStore.open(killed), FeatureStore.open(full)
    assert a.ids() == b.ids() and len(a.ids()) == 24
    for name, mtime in done_before.items():  # finished clips were not rewritten
        assert (killed / "clips" / name).stat().st_mtime_ns == mtime
    for cid in a.ids():
        ra, rb = a.get(cid), b.get(cid)
        for field in ("music", "dance", "music_beat", "dance_beat"):
            np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))
    for split in ("train", "val", "test"):
        assert a.split_ids(split) == b.split_ids(split)


@pytest.mark.slow
def test_every_kind_of_bad_input_is_reported_and_the_batch_goes_on(tmp_path):
    import numpy as np
    import soundfile as sf

    from tests.media.test_audio import click_track, write_media

    good = tmp_path / "good"
    write_corpus(out_dir=good, num_pairs=1, seed=2, duration_s=10.5, video=False, show_progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (bad / "empty.mkv").write_bytes(b"")
    (bad / "notes.xyz").write_text("hello")
    blank = np.full((12 * 10, 64, 64, 3), 200, np.uint8)
    write_media(bad / "silent_video.mp4", frames=blank, fps=10)  # no audio stream
    write_media(
        bad / "nobody.mp4",
        frames=blank,
        fps=10,
        audio=click_track(duration_s=12, sr=22050, clicks_s=(1, 2, 3)),
        sr=22050,
    )
    sf.write(bad / "silence.wav", np.zeros(22050 * 12, np.float32), 22050)
    (bad / "manifest.csv").write_text(f"music,dance,offset_s\nsilence.wav,{good / 'pair_000.npz'},0\n")
    with open(bad / "short.csv", "w") as fh:
        fh.write(f"music,dance,offset_s\n{good / 'pair_000.wav'},{good / 'pair_000.npz'},5\n")
    inputs = [
        good,
        bad / "corrupt.mp4",
        bad / "empty.mkv",
        bad / "notes.xyz",
        bad / "silent_video.mp4",
        bad / "nobody.mp4",
        bad / "manifest.csv",
        bad / "short.csv",
    ]
    report = prepare(inputs=inputs, out=tmp_path / "store", show_progress=False)
    assert report.clips_written == 1
    reasons = {Path(s["input"]).name.split("@")[0]: s["reason"] for s in report.skipped}
    assert "corrupt.mp4" in reasons and "empty.mkv" in reasons
    assert "unknown format" in reasons["notes.xyz"]
    assert "audio" in reasons["silent_video.mp4"].lower()
    assert "person" in reasons["nobody.mp4"].lower()
    all_reasons = [s["reason"] for s in report.skipped]  # two pairs share the dance file name
    assert any("silen" in r.lower() for r in all_reasons)
    assert any("less than one" in r for r in all_reasons)


def test_store_export_import_official_cli(tmp_path):
    from typer.testing import CliRunner

    from beatdance.cli import load_commands

    app = load_commands()

    corpus = tmp_path / "corpus"
    write_corpus(out_dir=corpus, num_pairs=3, seed=1, duration_s=10.5, video=False, show_progress=False)
    prepare(inputs=[corpus], out=tmp_path / "store", show_progress=False)
    runner = CliRunner()
    res = runner.invoke(app, ["export-official", str(tmp_path / "store"), str(tmp_path / "official")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "official" / "music_beat").is_dir()
    res = runner.invoke(app, ["import-official", str(tmp_path / "official"), str(tmp_path / "back")])
    assert res.exit_code == 0, res.output
    store, back = FeatureStore.open(tmp_path / "store"), FeatureStore.open(tmp_path / "back")
    assert sorted(back.ids()) == sorted(store.ids()) and len(store.ids()) == 3
    assert {s: back.split_ids(s) for s in back.split_names()} == {s: store.split_ids(s) for s in store.split_names()}
    for clip_id in store.ids():  # every array survives the round trip; beat times come back on the 10-fps grid
        a, b = store.get(clip_id), back.get(clip_id)
        for name in ("music", "dance", "music_beat", "dance_beat"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=f"{clip_id} {name}")
        for side in ("music", "dance"):
            grid_times = np.flatnonzero(getattr(a, f"{side}_beat")) / store.grid_fps
            np.testing.assert_allclose(getattr(b, f"{side}_beat_times"), grid_times)
        assert b.meta["group"] == a.meta["group"]


def test_pair_ids_do_not_depend_on_where_the_media_lives(tmp_path):
    from beatdance.pipeline.inputs import discover_pairs

    write_corpus(out_dir=tmp_path / "a", num_pairs=2, seed=5, duration_s=3.0, video=False, show_progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    here, _ = discover_pairs([tmp_path / "a"])
    there, _ = discover_pairs([tmp_path / "elsewhere" / "b"])
    assert [p.pair_id for p in here] == [p.pair_id for p in there] and len(here) == 2
    (tmp_path / "elsewhere" / "b" / "pair_001.npz").write_bytes(b"other content")
    changed, _ = discover_pairs([tmp_path / "elsewhere" / "b"])
    assert changed[1].pair_id != here[1].pair_id and changed[0].pair_id == here[0].pair_id


@pytest.mark.parametrize("kind", ["empty folder", "missing path", "music alone"])
def test_prepare_without_pairs_is_an_error_that_says_what_it_looks_for(tmp_path, kind):
    from beatdance.errors import DataError

    src = tmp_path / "in"
    if kind != "missing path":
        src.mkdir()
    if kind == "music alone":
        write_corpus(out_dir=tmp_path / "c", num_pairs=1, seed=2, duration_s=10.5, video=False, show_progress=False)
        shutil.copy(tmp_path / "c" / "pair_000.wav", src / "song.wav")
    with pytest.raises(DataError, match="no music/dance pairs") as err:
        prepare(inputs=[src], out=tmp_path / "store", show_progress=False)
    assert "manifest CSV" in str(err.value) and "x.wav + x.npz" in str(err.value)
    assert not (tmp_path / "store").exists()  # nothing written for nothing found


def test_same_name_music_and_keypoints_make_a_pair_without_a_manifest(tmp_path):
    write_corpus(out_dir=tmp_path / "c", num_pairs=2, seed=2, duration_s=10.5, video=False, show_progress=False)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):  # what users have: x.wav + x.npz, no manifest
        for ext in (".wav", ".npz"):
            shutil.copy(tmp_path / "c" / f"pair_00{i}{ext}", src / f"dance{i}{ext}")
    report = prepare(inputs=[src], out=tmp_path / "store", show_progress=False)
    assert report.pairs == 2 and report.clips_written == 2 and not report.skipped
    metas = [FeatureStore.open(tmp_path / "store").meta(c) for c in FeatureStore.open(tmp_path / "store").ids()]
    assert sorted(Path(m["music_file"]).name for m in metas) == ["dance0.wav", "dance1.wav"]
    assert all(Path(m["dance_file"]).stem == Path(m["music_file"]).stem for m in metas)


def test_prepare_where_every_pair_fails_is_an_error(tmp_path):
    from beatdance.errors import DataError

    src = tmp_path / "in"
    src.mkdir()
    (src / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DataError, match="wrote no clips"):
        prepare(inputs=[src], out=tmp_path / "store", show_progress=False)
