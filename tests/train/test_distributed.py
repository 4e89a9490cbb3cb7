"""Data-parallel training (torchrun): 2 gloo processes on a global batch equal 1 process on it, only rank 0 writes
the run folder, a resume under 2 processes is exact, and on CUDA the forward runs under bf16 autocast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from test_trainer import TINY, _assert_same_run, _featureset, _resume_config, _resume_data, _resume_model

from beatdance.beats.rhythm import tempo_bump
from beatdance.errors import CheckpointError, ParameterError
from beatdance.features.featureset import FeatureSet
from beatdance.model import BlenderConfig
from beatdance.train import TrainConfig, train
from beatdance.train.distributed import DistEnv, rank_share, resolve_device, threads_per_process
from beatdance.train.trainer import Trainer

B = 8  # clips per rank; the single process takes 2 x B


def _with_rhythm(fs: FeatureSet, seed: int) -> FeatureSet:
    """``fs`` with rhythm arrays: music at a random tempo, its dance at the same tempo or half of it (metre targets)."""
    rng = np.random.default_rng(seed)
    tempo = rng.uniform(80.0, 160.0, len(fs))
    half = rng.random(len(fs)) < 0.5

    def arrays(tempi: np.ndarray) -> np.ndarray:
        bumps = np.stack([tempo_bump(tempo_bpm=t) for t in tempi])
        return np.stack([bumps, rng.random(bumps.shape), rng.random(bumps.shape)], axis=1).astype(np.float32)

    return replace(fs, music_rhythm=arrays(tempo), dance_rhythm=arrays(np.where(half, tempo / 2, tempo)))


def _model() -> BlenderConfig:
    return BlenderConfig(music_dim=6, dance_dim=5, rhythm_branch=True, **TINY)


def _config(batch_size: int, **kw) -> TrainConfig:
    """Dropout-free (TINY), with both tempo augmentations: every output the loss takes is gathered. No clipping in
    effect: clipped to norm 1, a gradient N times too small would look right. Adam's eps 1e-4: attention key biases
    have no gradient but float noise, which Adam at eps 1e-6 blows up to ~lr/100 moves."""
    base = dict(
        epochs=2,
        batch_size=batch_size,
        lr=3e-3,
        seed=3,
        evals_per_epoch=1,
        selection_window=1,
        save_every=0,
        warmup_fraction=0.0,
        tempo_stretch_octaves=0.1,
        mismatch_octaves=(0.04, 0.15),
        grad_clip=1e6,
        adam_eps=1e-4,
    )
    return TrainConfig(**{**base, **kw})


def _data() -> tuple[FeatureSet, FeatureSet]:
    return _with_rhythm(_featureset(42, 0), 7), _with_rhythm(_featureset(12, 1), 8)  # 42 = 16 + 16 + a trailing 10


# Processes: torch.multiprocessing.spawn with the variables torchrun sets; results go through files. Each process
# joins the group through a rendezvous file, not a TCP port that another job on this machine could take meanwhile
# (train() then uses that group); the torchrun test below covers train() joining the group itself.


def _rank_main(rank: int, world_size: int, rendezvous: str, fn, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        fn(rank, *args)
    finally:
        dist.destroy_process_group()


def _launch(fn, *args, world_size: int = 2, timeout_s: float = 300.0) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` fresh processes; a rank's error is raised here, and processes still
    running after ``timeout_s`` (a hung collective) are terminated and fail the test."""
    rendezvous = Path(tempfile.mkdtemp(prefix="rendezvous-")) / "file"
    context = torch.multiprocessing.spawn(
        _rank_main, args=(world_size, str(rendezvous), fn, args), nprocs=world_size, join=False
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=1.0):
            assert time.monotonic() < deadline, f"the {world_size} processes did not finish in {timeout_s} s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        shutil.rmtree(rendezvous.parent, ignore_errors=True)


def _step_state(trainer: Trainer, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """One optimizer step: its loss, the (averaged, clipped) gradients and the weights after it."""
    loss = trainer.step(idx, epoch=0, step=0)
    named = dict(trainer.model.named_parameters())
    return {
        "loss": torch.tensor(loss),
        **{f"grad.{k}": p.grad.clone() for k, p in named.items()},
        **{f"weight.{k}": p.detach().clone() for k, p in named.items()},
    }


def _one_step_worker(rank: int, out: str) -> None:
    env = DistEnv.from_environ()
    tr, _ = _data()
    trainer = Trainer(
        train_set=tr,
        val_set=None,
        model_config=_model(),
        config=_config(B),
        out=Path(out),
        data_info=None,
        show_progress=False,
        env=env,
    )
    torch.save(_step_state(trainer, rank_share(np.arange(2 * B), env=env)), Path(out) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_ranks_step_like_one_process_on_the_global_batch(tmp_path):
    """The loss over gathered embeddings has the global batch's negatives and gradient: one step of 2 ranks x B
    gives the loss, gradients and weights of one process x 2B (a gather that dropped gradients would not)."""
    torch.set_num_threads(1)
    tr, _ = _data()
    single = Trainer(
        train_set=tr,
        val_set=None,
        model_config=_model(),
        config=_config(2 * B),
        out=tmp_path,
        data_info=None,
        show_progress=False,
    )
    want = _step_state(single, np.arange(2 * B))
    _launch(_one_step_worker, str(tmp_path))
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == want.keys()
        for key in want:
            tol = dict(rtol=0, atol=1e-5) if key.startswith("weight.") else dict(rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(got[key], want[key], **tol, msg=lambda m, k=key: f"{k}: {m}")


def _audit_writes(root: Path) -> list[str]:
    """From now on, record every write, folder change or removal under ``root`` made by this process."""
    events: list[str] = []
    changes = {
        "os.mkdir",
        "os.rename",
        "os.symlink",
        "os.remove",
        "os.rmdir",
        "os.truncate",
        "os.chmod",
        "shutil.rmtree",
        "os.link",
        "os.utime",
    }
    flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, oflags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((oflags or 0) & flags)
            if writes and str(root) in str(path):
                events.append(f"open {path} {mode}")
        elif event in changes and any(str(root) in str(a) for a in args if isinstance(a, (str, bytes, os.PathLike))):
            events.append(f"{event} {args}")

    sys.addaudithook(hook)
    return events


def _train_worker(
    rank: int,
    root: str,
    runs: list[tuple[str, bool, int | None]],
    model_cfg: BlenderConfig,
    config: TrainConfig,
    data: tuple,
) -> None:
    """Train each of ``runs`` (folder, resume, stop after epoch) under the torchrun variables, in turn. A stop is
    every rank stopping there, as if killed right after ``last/`` was saved. Rank 1 logs every write it makes
    under ``root`` to root/../rank1_writes.txt."""
    import beatdance.train.trainer as trainer_mod

    writes = _audit_writes(Path(root)) if rank == 1 else []
    real_save_last = trainer_mod.Trainer.save_last
    for out, resume, stop in runs:

        def save_last(self, epoch, stop=stop):
            real_save_last(self, epoch)
            if epoch + 1 == stop:
                raise KeyboardInterrupt

        trainer_mod.Trainer.save_last = save_last
        try:
            train(
                train_set=data[0],
                val_set=data[1],
                model_config=model_cfg,
                config=config,
                out=Path(root) / out,
                resume=resume,
                show_progress=False,
            )
        except KeyboardInterrupt:
            assert stop is not None
    if rank == 1:
        (Path(root).parent / "rank1_writes.txt").write_text("\n".join(writes))


@pytest.mark.slow
def test_a_two_process_run_equals_one_process_on_the_global_batch(tmp_path):
    """Whole runs through the epoch loop (each rank's share of every global batch, the trailing one too),
    validation and the run folder: 2 processes x B end where 1 process x 2B ends."""
    torch.set_num_threads(1)
    data = _data()
    train(
        train_set=data[0],
        val_set=data[1],
        model_config=_model(),
        config=_config(2 * B),
        out=tmp_path / "one",
        show_progress=False,
    )
    _launch(_train_worker, str(tmp_path / "runs"), [("two", False, None)], _model(), _config(B), data)
    one, two = (
        load_file(str(run / "last" / "model.safetensors")) for run in (tmp_path / "one", tmp_path / "runs" / "two")
    )
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
    rows = [
        [json.loads(r) for r in (run / "history.jsonl").read_text().splitlines()]
        for run in (tmp_path / "one", tmp_path / "runs" / "two")
    ]
    assert len(rows[0]) == len(rows[1]) == 2
    for a, b in zip(*rows):
        assert b["global_step"] == a["global_step"] and b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["m2d/R@1"] == a["m2d/R@1"]
    saved = json.loads((tmp_path / "runs" / "two" / "config.json").read_text())
    assert saved["distributed"] == {"world_size": 2, "global_batch_size": 2 * B}


@pytest.mark.slow
def test_two_process_resume_equals_an_uninterrupted_two_process_run(tmp_path):
    """Dropout on, so each rank's own RNG stream must come back from last/; rank 1 writes nothing in the run folders."""
    data = _resume_data()  # 40 clips: global batches of 16, 16 and 8
    args = (_resume_model(), _resume_config(), data)
    root = tmp_path / "runs"
    _launch(_train_worker, str(root), [("full", False, None), ("part", False, 1)], *args)
    assert (tmp_path / "rank1_writes.txt").read_text() == ""
    assert json.loads((root / "part" / "last" / "config.json").read_text())["state"]["epoch"] == 1
    _launch(_train_worker, str(root), [("part", True, None)], *args)  # fresh processes resume
    assert (tmp_path / "rank1_writes.txt").read_text() == ""
    _assert_same_run(root / "full", root / "part")
    with pytest.raises(CheckpointError, match="trained by 2 processes"):
        train(
            train_set=data[0],
            val_set=data[1],
            model_config=args[0],
            config=args[1],
            out=root / "part",
            resume=True,
            show_progress=False,
        )


def test_rank_shares_are_equal_and_disjoint():
    batch = np.arange(11)
    shares = [rank_share(batch, env=DistEnv(rank=r, world_size=3)) for r in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # 9 and 10 sit out this step
    assert rank_share(batch, env=DistEnv()).tolist() == batch.tolist()


def test_environment_device_and_threads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # the mapping to cuda:LOCAL_RANK, with or without GPUs
    env = DistEnv.from_environ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.is_main, env.enabled) == (1, 4, 1, False, True)
    assert DistEnv.from_environ({}) == DistEnv()
    with pytest.raises(ParameterError, match="RANK=4"):
        DistEnv.from_environ({"RANK": "4", "WORLD_SIZE": "4"})
    assert resolve_device("cuda", env=env) == torch.device("cuda", 1)
    with pytest.raises(ParameterError, match="cuda:LOCAL_RANK"):
        resolve_device("cuda:0", env=env)
    assert resolve_device("cpu", env=env) == torch.device("cpu")
    assert threads_per_process(16, env=env) == 8 and threads_per_process(1, env=env) == 1


def _forward_dtype(trainer: Trainer) -> torch.dtype:
    """The dtype of the first linear layer's output during one training step."""
    seen = []
    handle = trainer.model.music.feature_linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer.step(np.arange(2 * B), epoch=0, step=0)
    handle.remove()
    return seen[0]


def test_the_cpu_forward_runs_in_float32(tmp_path):
    tr, _ = _data()
    trainer = Trainer(
        train_set=tr,
        val_set=None,
        model_config=_model(),
        config=_config(2 * B, device="cpu"),
        out=tmp_path,
        data_info=None,
        show_progress=False,
    )
    assert _forward_dtype(trainer) == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_runs_under_bf16_autocast(tmp_path):
    """Two steps on CUDA: the forward in bf16, the loss finite, float32 weights saved."""
    config = _config(2 * B, device="cuda", epochs=1, evals_per_epoch=0)
    trainer = Trainer(
        train_set=_with_rhythm(_featureset(32, 0), 7),
        val_set=None,
        model_config=_model(),
        config=config,
        out=tmp_path / "run",
        data_info=None,
        show_progress=False,
    )
    assert trainer.device.type == "cuda" and _forward_dtype(trainer) == torch.bfloat16
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.step(np.arange(2 * B, 4 * B), epoch=0, step=1)
    weights = trainer.model.state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert any(not torch.equal(before[k], weights[k]) for k in weights)
    trainer.save_last(0)
    saved = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in saved.values() if v.is_floating_point())


@pytest.mark.slow
def test_torchrun_runs_the_train_command(tmp_path):
    """`torchrun --nproc_per_node=2 -m beatdance train`: one summary, a run folder of 2 processes."""
    from beatdance.features.official import write_official
    from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features

    cfg = SynthFeatureConfig(
        num_train=24,
        num_val=8,
        num_test=4,
        music_dim=12,
        dance_dim=8,
        music_frames=20,
        dance_frames=20,
        latent_dim=4,
        seed=1,
    )
    write_official(tmp_path / "data", splits=generate_synthetic_features(cfg))
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "beatdance",
        "train",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--embed-dim",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--ff-dim",
        "32",
        "--evals-per-epoch",
        "1",
        "--no-progress",
        "--json",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # printed by rank 0 alone
    assert summary["last_validation"]["epoch"] == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["distributed"] == {"world_size": 2, "global_batch_size": 8}
