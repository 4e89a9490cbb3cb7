"""`beatdance synth` writes a corpus and `beatdance beats` finds its tempo, with JSON and a plot."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from beatdance.cli import load_commands

app = load_commands()


def test_synth_then_beats_json_and_plot(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "c"), "--num", "1", "--duration", "12", "--no-video"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "c" / "pair_000.beats.json").read_text())
    res = runner.invoke(
        app, ["beats", str(tmp_path / "c" / "pair_000.wav"), "--json", "--plot", str(tmp_path / "b.png")]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ratio = out["music"]["tempo_bpm"] / truth["bpm"]
    assert min(abs(ratio - r) for r in (0.5, 1.0, 2.0)) < 0.05
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.npz"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["dance"]["beat_times_s"]


def test_beats_names_the_tempo_levels(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app, ["synth", "--out", str(tmp_path / "c"), "--num", "1", "--duration", "12", "--no-video", "--seed", "7"]
    )  # an electronic song: the dance's dominant period is a bar of 4 beats
    assert res.exit_code == 0, res.output
    bpm = json.loads((tmp_path / "c" / "pair_000.beats.json").read_text())["bpm"]
    dance = json.loads(runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.npz"), "--json"]).output)["dance"]
    assert abs(dance["beat_tempo_bpm"] / bpm - 1) < 0.04 and abs(dance["bar_tempo_bpm"] / bpm - 0.25) < 0.01
    assert dance["tempo_bpm"] == dance["bar_tempo_bpm"]
    text = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.npz")]).output
    assert (
        f"dance: beat level {dance['beat_tempo_bpm']:.1f} BPM, dominant period (bar level) "
        f"{dance['bar_tempo_bpm']:.1f} BPM"
    ) in text
    found = {}
    for tracker in ("madmom-metre", "librosa"):
        res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.wav"), "--tracker", tracker])
        assert res.exit_code == 0, res.output
        assert res.output.startswith("music: beat level ") and f"({tracker} tracker)" in res.output
        assert ("metre unknown" in res.output) == (tracker == "librosa"), res.output
        res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.wav"), "--tracker", tracker, "--json"])
        found[tracker] = json.loads(res.output)["music"]["beat_times_s"]
    assert found["madmom-metre"] != found["librosa"]  # the option reaches the tracker
    res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.wav"), "--tracker", "aubio"])
    assert res.exit_code != 0 and "tracker='aubio'" in str(res.exception) + res.output
