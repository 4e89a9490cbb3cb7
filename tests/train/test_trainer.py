"""Training: it learns, selection follows the moving window, resume equals an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import beatdance.train.trainer as trainer_mod
from beatdance.errors import CheckpointError, ParameterError
from beatdance.features.featureset import FeatureSet
from beatdance.model import BlenderConfig
from beatdance.model.checkpoint import load_checkpoint
from beatdance.train import TrainConfig, train
from beatdance.train.steps import eval_steps, lr_factor

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
    result = train(
        train_set=tr,
        val_set=va,
        model_config=model_cfg,
        config=_config(epochs=6),
        out=tmp_path / "run",
        show_progress=False,
    )
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


def _resume_model() -> BlenderConfig:
    return BlenderConfig(music_dim=6, dance_dim=5, **{**TINY, "dropout_self": 0.2})


def _resume_data() -> tuple[FeatureSet, FeatureSet]:
    return _featureset(40, 0), _featureset(24, 1)  # 5 steps an epoch, validated after steps 2 and 4


def _resume_config(**kw) -> TrainConfig:
    """A fast, bumpy run: its selection metric falls after epoch 1's first validation and recovers in epoch 2, so a
    resumed run that forgot the best score or the moving window would select (and log) differently."""
    return _config(**{"epochs": 3, "lr": 1e-2, **kw})


def _assert_same_run(a, b) -> None:
    """Two run folders hold the same last and best weights, the same best metrics and the same history."""
    for ckpt in ("last", "best"):
        wa = load_file(str(a / ckpt / "model.safetensors"))
        wb = load_file(str(b / ckpt / "model.safetensors"))
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0)
    drop_time = lambda row: {k: v for k, v in row.items() if k != "time_s"}  # noqa: E731
    best_a, best_b = (json.loads((run / "best" / "config.json").read_text())["metrics"] for run in (a, b))
    assert drop_time(best_a) == drop_time(best_b)
    rows = [[drop_time(json.loads(r)) for r in (run / "history.jsonl").read_text().splitlines()] for run in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 6


# Run in a child process: train the resume test's run and SIGKILL it before global step argv[3] (mid-epoch).
_KILLED_MID_EPOCH = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import torch
import beatdance.train.trainer as trainer_mod
from test_trainer import _resume_config, _resume_data, _resume_model

real_lr_factor = trainer_mod.lr_factor

def lr_factor(step, **kwargs):
    if step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_lr_factor(step, **kwargs)

trainer_mod.lr_factor = lr_factor
torch.set_num_threads(1)  # as the test does (fixture one_thread)
tr, va = _resume_data()
trainer_mod.train(train_set=tr, val_set=va, model_config=_resume_model(), config=_resume_config(), out=sys.argv[2],
                  show_progress=False)
"""


@pytest.fixture
def one_thread():
    """Train with one torch thread, as the killed child does: the same arithmetic, and on a busy machine no
    threads spinning while they wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, one_thread):
    tr, va = _resume_data()
    model_cfg = _resume_model()
    train(
        train_set=tr,
        val_set=va,
        model_config=model_cfg,
        config=_resume_config(),
        out=tmp_path / "full",
        show_progress=False,
    )

    real_save = trainer_mod.save_checkpoint

    def save_then_kill(path, **kwargs):  # simulates the process being killed right after epoch 1 is saved
        real_save(path, **kwargs)
        if path.name == "last":
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_kill)
    with pytest.raises(KeyboardInterrupt):
        train(
            train_set=tr,
            val_set=va,
            model_config=model_cfg,
            config=_resume_config(),
            out=tmp_path / "part",
            show_progress=False,
        )
    monkeypatch.undo()
    with pytest.raises(ParameterError, match="--resume"):
        train(
            train_set=tr,
            val_set=va,
            model_config=model_cfg,
            config=_resume_config(),
            out=tmp_path / "part",
            show_progress=False,
        )
    with pytest.raises(CheckpointError, match="lr"):
        train(
            train_set=tr,
            val_set=va,
            model_config=model_cfg,
            config=_resume_config(lr=1e-3),
            out=tmp_path / "part",
            resume=True,
            show_progress=False,
        )
    train(
        train_set=tr,
        val_set=va,
        model_config=model_cfg,
        config=_resume_config(),
        out=tmp_path / "part",
        resume=True,
        show_progress=False,
    )
    _assert_same_run(tmp_path / "full", tmp_path / "part")


def test_resume_after_a_kill_mid_epoch_equals_uninterrupted_run(tmp_path, one_thread):
    """SIGKILLed in epoch 2 after its first validation (history and maybe best/ already hold epoch-2 results, last/
    holds epoch 1), a resumed run ends with the weights, best checkpoint and history of an uninterrupted one."""
    tr, va = _resume_data()
    train(
        train_set=tr,
        val_set=va,
        model_config=_resume_model(),
        config=_resume_config(),
        out=tmp_path / "full",
        show_progress=False,
    )
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_EPOCH, str(Path(__file__).parent), str(tmp_path / "part"), "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = json.loads((tmp_path / "part" / "last" / "config.json").read_text())["state"]
    history = [json.loads(r) for r in (tmp_path / "part" / "history.jsonl").read_text().splitlines()]
    assert state["epoch"] == 1 and [h["epoch"] for h in history] == [
        1,
        1,
        2,
    ]  # killed after epoch 2's step-2 validation
    train(
        train_set=tr,
        val_set=va,
        model_config=_resume_model(),
        config=_resume_config(),
        out=tmp_path / "part",
        resume=True,
        show_progress=False,
    )
    _assert_same_run(tmp_path / "full", tmp_path / "part")


def test_the_learnable_temperature_is_not_decayed(tmp_path):
    from safetensors.torch import load_file

    data = _featureset(64, seed=5)
    model = BlenderConfig(music_dim=6, dance_dim=5, **TINY)
    cfg = _config(
        epochs=2,
        lr=1e-2,
        weight_decay=5.0,
        evals_per_epoch=0,
        save_every=0,
        temperature=0.05,
        learnable_temperature=True,
        warmup_fraction=0.0,
    )
    train(train_set=data, val_set=None, model_config=model, config=cfg, out=tmp_path / "run", show_progress=False)
    weights = load_file(str(tmp_path / "run" / "last" / "extra.safetensors"))
    # decayed at lr x wd = 5 % a step for 16 steps, log(20) = 3.0 would fall below 1.5; Adam alone moves it ~0.16
    assert abs(float(weights["loss.log_scale"]) - np.log(20.0)) < 0.3
