"""`beatdance train` then `beatdance evaluate --hubness dis --json` on a dataset in the official layout."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from beatdance.cli import load_commands

app = load_commands()
from beatdance.features.official import write_official
from beatdance.model.checkpoint import load_checkpoint
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features


def test_train_then_evaluate_with_dis_json(tmp_path):
    cfg = SynthFeatureConfig(num_train=48, num_val=16, num_test=16, music_dim=12, dance_dim=8, music_frames=20,
                             dance_frames=20, latent_dim=4, seed=1)
    write_official(tmp_path / "data", splits=generate_synthetic_features(cfg))
    runner = CliRunner()
    tiny = ["--embed-dim", "16", "--layers", "1", "--heads", "2", "--ff-dim", "32", "--batch-size", "8"]
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "2",
                              "--lr", "1e-3", "--no-progress", "--json", "--pool", "mean", "--positional", "sinusoidal",
                              *tiny])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["last_validation"]["epoch"] == 2
    net, _ = load_checkpoint(summary["best_checkpoint"])
    assert (net.config.pool, net.config.positional, net.config.output_dim) == ("mean", "sinusoidal", 16)
    res = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "data"),
                              "--hubness", "dis", "--json", str(tmp_path / "report.json")])
    assert res.exit_code == 0, res.output
    assert "hubness=dis" in res.output and "hubness=none" in res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["results"]) == {"none", "dis"}
    for result in report["results"].values():
        for direction in ("m2d", "d2m"):
            assert 0.0 <= result[direction]["metrics"]["R@1"] <= 100.0
            assert "BS@1" in result[direction]["beat_similarity"]


def test_evaluate_rejects_features_of_another_config(tmp_path):
    a = SynthFeatureConfig(num_train=16, num_val=4, num_test=4, music_dim=12, dance_dim=8, music_frames=20, dance_frames=20)
    b = SynthFeatureConfig(num_train=16, num_val=4, num_test=4, music_dim=10, dance_dim=8, music_frames=20, dance_frames=20)
    write_official(tmp_path / "a", splits=generate_synthetic_features(a))
    write_official(tmp_path / "b", splits=generate_synthetic_features(b))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "a"), "--out", str(tmp_path / "run"), "--epochs", "1",
                              "--embed-dim", "16", "--layers", "1", "--heads", "2", "--ff-dim", "32", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "b")])
    assert res.exit_code != 0
    assert "music_dim" in str(res.exception) or "expects" in str(res.exception)
