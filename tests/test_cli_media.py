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
    res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.wav"), "--json", "--plot", str(tmp_path / "b.png")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ratio = out["music"]["tempo_bpm"] / truth["bpm"]
    assert min(abs(ratio - r) for r in (0.5, 1.0, 2.0)) < 0.05
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["beats", str(tmp_path / "c" / "pair_000.npz"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["dance"]["beat_times_s"]
