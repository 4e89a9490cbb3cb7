"""`beatdance train` then `beatdance evaluate --hubness dis --json` on a dataset in the official layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import cosine_scores, pessimistic_ranks, recall_table
from typer.testing import CliRunner

from beatdance.cli import load_commands
from beatdance.errors import ParameterError
from beatdance.features.loading import load_features
from beatdance.features.official import write_official
from beatdance.model.checkpoint import load_checkpoint
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features

app = load_commands()


@pytest.mark.slow
def test_train_then_evaluate_with_dis_json(tmp_path):
    cfg = SynthFeatureConfig(
        num_train=48,
        num_val=16,
        num_test=16,
        music_dim=12,
        dance_dim=8,
        music_frames=20,
        dance_frames=20,
        latent_dim=4,
        seed=1,
    )
    write_official(tmp_path / "data", splits=generate_synthetic_features(cfg))
    runner = CliRunner()
    tiny = ["--embed-dim", "16", "--layers", "1", "--heads", "2", "--ff-dim", "32", "--batch-size", "8"]
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "2",
            "--lr",
            "1e-3",
            "--no-progress",
            "--json",
            "--pool",
            "mean",
            "--positional",
            "sinusoidal",
            "--evals-per-epoch",
            "2",
            "--no-standardise",
            *tiny,
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["last_validation"]["epoch"] == 2
    net, _ = load_checkpoint(summary["best_checkpoint"])
    assert (net.config.pool, net.config.positional, net.config.output_dim) == ("mean", "sinusoidal", 16)
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tmp_path / "run"),
            "--data",
            str(tmp_path / "data"),
            "--hubness",
            "dis",
            "--json",
            str(tmp_path / "report.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "hubness=dis" in res.output and "hubness=none" in res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["results"]) == {"none", "dis"}
    # The same numbers counted here: the best checkpoint's embeddings of the test split, cosine scores, and for
    # DIS the train split as querybank (k=1, beta=20), ranks counted one pair at a time.
    test, bank = _embed(net, tmp_path / "data", "test"), _embed(net, tmp_path / "data", "train")
    for direction, (query, gallery) in (("m2d", ("music", "dance")), ("d2m", ("dance", "music"))):
        plain = cosine_scores(test[query], test[gallery])
        dis = _dynamic_inverted_softmax(plain, cosine_scores(bank[query], test[gallery]), beta=20.0)
        assert (dis != plain).any(axis=1).sum() >= 4  # DIS rescored some rows
        for name, scores in (("none", plain), ("dis", dis)):
            want = recall_table(pessimistic_ranks(scores))
            got = {k: report["results"][name][direction]["metrics"][k] for k in want}
            assert got == pytest.approx(want), (name, direction)
            assert "BS@1" in report["results"][name][direction]["beat_similarity"]
    assert report["results"]["none"]["m2d"]["metrics"]["R@1"] > 100 / 16  # trained: above chance


def _embed(net, data, split: str) -> dict[str, np.ndarray]:
    """Fused embeddings of one split, straight from the model's encoders."""
    fs = load_features(data, split=split)
    with torch.no_grad():
        music = net.encode_music(torch.from_numpy(fs.music), torch.from_numpy(fs.music_beat))["fuse"]
        dance = net.encode_dance(torch.from_numpy(fs.dance), torch.from_numpy(fs.dance_beat))["fuse"]
    return {"music": music.numpy(), "dance": dance.numpy()}


def _dynamic_inverted_softmax(scores: np.ndarray, bank: np.ndarray, *, beta: float) -> np.ndarray:
    """QB-Norm DIS written out: rows whose top item is the top item of some bank query become
    exp(beta s) / sum over the bank of exp(beta s_bank) per gallery item; other rows keep their scores."""
    active = {int(np.argmax(row)) for row in bank}
    out = scores.copy()
    for q in range(len(scores)):
        if int(np.argmax(scores[q])) in active:
            out[q] = [np.exp(beta * scores[q, j]) / np.exp(beta * bank[:, j]).sum() for j in range(scores.shape[1])]
    return out


def _train_tiny(runner: CliRunner, *, data, out) -> None:
    """One epoch of a tiny model on ``data`` into ``out`` through the CLI."""
    tiny = ["--epochs", "1", "--embed-dim", "16", "--layers", "1", "--heads", "2", "--ff-dim", "32", "--no-progress"]
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *tiny])
    assert res.exit_code == 0, res.output


def test_evaluate_rejects_features_of_another_config(tmp_path):
    a = SynthFeatureConfig(
        num_train=16, num_val=4, num_test=4, music_dim=12, dance_dim=8, music_frames=20, dance_frames=20
    )
    b = SynthFeatureConfig(
        num_train=16, num_val=4, num_test=4, music_dim=10, dance_dim=8, music_frames=20, dance_frames=20
    )
    write_official(tmp_path / "a", splits=generate_synthetic_features(a))
    write_official(tmp_path / "b", splits=generate_synthetic_features(b))
    runner = CliRunner()
    _train_tiny(runner, data=tmp_path / "a", out=tmp_path / "run")
    res = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "b")])
    assert res.exit_code != 0
    assert "music_dim" in str(res.exception) or "expects" in str(res.exception)


def test_evaluate_device_option_runs_on_cpu_and_refuses_a_missing_gpu(tmp_path):
    cfg = SynthFeatureConfig(
        num_train=16, num_val=4, num_test=8, music_dim=12, dance_dim=8, music_frames=20, dance_frames=20
    )
    write_official(tmp_path / "data", splits=generate_synthetic_features(cfg))
    runner = CliRunner()
    _train_tiny(runner, data=tmp_path / "data", out=tmp_path / "run")
    evaluate = ["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--json", "-"]
    res = runner.invoke(app, [*evaluate, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["num_clips"] == 8
    missing = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    res = runner.invoke(app, [*evaluate, "--device", missing])
    assert isinstance(res.exception, ParameterError), res.exception
    assert f"--device {missing}" in str(res.exception) and "--device cpu" in str(res.exception)
