"""Training: it learns, selection follows the moving window, resume equals an uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from beatdance.errors import CheckpointError, ParameterError
from beatdance.features.featureset import FeatureSet
from beatdance.model import BlenderConfig
from beatdance.model.checkpoint import load_checkpoint
import beatdance.train.trainer as trainer_mod
from beatdance.train import TrainConfig, train
from beatdance.train.trainer import eval_steps, lr_factor

TINY = dict(embed_dim=16, num_layers=1, num_heads=2, ff_dim=32, beat_hidden=8, dropout_self=0.0, dropout_cross=0.0)


def _featureset(n: int, seed: int) -> FeatureSet:
    """Paired clips whose dance is a fixed linear map of the music plus noise: learnable."""
    rng = np.random.default_rng(seed)
    music = rng.normal(size=(n, 10, 6)).astype(np.float32)
    mix = np.random.default_rng(99).normal(size=(6, 5)).astype(np.float32)
    dance = (music @ mix + 0.1 * rng.normal(size=(n, 10, 5))).astype(np.float32)
    beats = (rng.random((n, 10, 10)) > 0.8).astype(np.float32)
    return FeatureSet(ids=[f"c{i}" for i in range(n)], music=music, dance=dance, music_beat=beats, dance_beat=beats)


def _config(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, lr=3e-3, seed=3, evals_per_epoch=2, selection_window=2, save_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_schedule_and_eval_points():
    assert lr_factor(0, total_steps=100, warmup_steps=10) == 0.0
    assert lr_factor(10, total_steps=100, warmup_steps=10) == pytest.approx(1.0)
    assert lr_factor(55, total_steps=100, warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor(100, total_steps=100, warmup_steps=10) == pytest.approx(0.0)
    assert eval_steps(303, 2) == {151, 302}  # the official evaluation points (SPEC §3.5)


@pytest.mark.parametrize("variant", ["temporal", "official"])
def test_training_learns_and_writes_a_run(tmp_path, variant):
    tr, va = _featureset(64, 0), _featureset(24, 1)
    model_cfg = BlenderConfig(music_dim=6, dance_dim=5, variant=variant, **TINY)
    result = train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=6), out=tmp_path / "run",
                   show_progress=False)
    hist = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 12 and hist == result.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["m2d/R@1"] > 100 / 24 * 2  # clearly above chance
    model, cfg = load_checkpoint(tmp_path / "run")
    assert cfg["model"]["variant"] == variant and cfg["train"]["epochs"] == 6
    best = [h for h in hist if h["saved_best"]][-1]
    assert cfg["metrics"]["global_step"] == best["global_step"]
    assert best["window_score"] == max(h["window_score"] for h in hist)
    assert (tmp_path / "run" / "epoch_0003" / "model.safetensors").exists()


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    tr, va = _featureset(40, 0), _featureset(16, 1)
    model_cfg = BlenderConfig(music_dim=6, dance_dim=5, **{**TINY, "dropout_self": 0.2})
    train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=3), out=tmp_path / "full", show_progress=False)

    real_save = trainer_mod.save_checkpoint

    def save_then_kill(path, **kwargs):  # simulates the process being killed right after epoch 1 is saved
        real_save(path, **kwargs)
        if path.name == "last":
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_kill)
    with pytest.raises(KeyboardInterrupt):
        train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=3), out=tmp_path / "part",
              show_progress=False)
    monkeypatch.undo()
    with pytest.raises(ParameterError, match="--resume"):
        train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=3), out=tmp_path / "part", show_progress=False)
    with pytest.raises(CheckpointError, match="lr"):
        train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=3, lr=1e-3), out=tmp_path / "part",
              resume=True, show_progress=False)
    train(train_set=tr, val_set=va, model_config=model_cfg, config=_config(epochs=3), out=tmp_path / "part",
          resume=True, show_progress=False)
    a = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "last" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    full = (tmp_path / "full" / "history.jsonl").read_text().splitlines()
    part = (tmp_path / "part" / "history.jsonl").read_text().splitlines()
    drop_time = lambda rows: [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in rows]  # noqa: E731
    assert drop_time(full) == drop_time(part)
