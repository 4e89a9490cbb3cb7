"""Contrastive training of the Beat Blender with validation-based model selection and exact resume.

A run directory holds::

    config.json      model, training and data configs (a resumed run must match them)
    history.jsonl    one line per validation (losses, learning rate, metrics, moving-window score)
    last/            weights + optimizer/RNG state after the last finished epoch (for --resume)
    best/            weights with the best moving-window selection metric so far
    epoch_NNNN/      a copy every ``save_every`` epochs (none when 0)

Resuming restarts after the last finished epoch and gives the same weights as an uninterrupted run.

Under ``torchrun`` (``train.distributed``) every process trains on its share of each global batch of
world_size x ``batch_size`` clips, with the loss over the embeddings of the whole global batch; rank 0
writes the run directory while the others wait, and a resume needs the same number of processes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from ..errors import CheckpointError, DataError, ParameterError
from ..features.featureset import FeatureSet
from ..model.blender import BeatBlender, BlenderConfig
from ..model.checkpoint import check_compatible, load_extra_tensors, resolve_checkpoint, save_checkpoint
from ..model.loss import ContrastiveLoss
from ..model.prior import fit_prior_on
from ..util import atomic_write_json, progress, read_json, seed_everything
from .config import TrainConfig
from .distributed import (
    DistEnv,
    barrier,
    gather_outputs,
    gather_rng_states,
    join_process_group,
    rank_share,
    resolve_device,
)
from .steps import eval_steps, forward_batch, lr_factor, optimizer_tensors, restore_optimizer, validation_row


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None


class Trainer:
    """One training run, in clear steps: set up (model, loss, optimizer, schedule), resume, then per epoch
    the steps with validation and model selection, and the ``last/`` checkpoint. Under torchrun (``env``)
    the process group must be joined already (:func:`train` joins it)."""

    def __init__(
        self,
        *,
        train_set: FeatureSet,
        val_set: FeatureSet | None,
        model_config: BlenderConfig,
        config: TrainConfig,
        out: Path,
        data_info: dict[str, Any] | None,
        show_progress: bool,
        env: DistEnv | None = None,
    ) -> None:
        check_compatible(model_config, train_set, source="the training split")
        if val_set is not None:
            check_compatible(model_config, val_set, source="the validation split")
        self.env = env = env or DistEnv()
        if len(train_set) < max(2, env.world_size):
            raise DataError(
                f"The training split has {len(train_set)} clips; contrastive training needs at least 2, "
                f"and one per process ({env.world_size})."
            )
        self.train_set, self.val_set, self.config, self.out = train_set, val_set, config, out
        self.data_info = data_info or {}
        self.show_progress = show_progress and env.is_main
        self.device = resolve_device(config.device, env=env)
        self.global_batch_size = config.batch_size * env.world_size
        self.run_config = {
            "model": model_config.to_dict(),
            "train": config.to_dict(),
            "data": self.data_info,
            "distributed": {"world_size": env.world_size, "global_batch_size": self.global_batch_size},
        }
        seed_everything(config.seed)
        self.model = BeatBlender(model_config).to(self.device)
        if model_config.standardise:
            self.model.fit_standardisation(
                music=torch.from_numpy(train_set.music).to(self.device),
                dance=torch.from_numpy(train_set.dance).to(self.device),
            )
        if model_config.metre_prior:  # counted on the training pairs; saved with every checkpoint
            self.model.prior = fit_prior_on(train_set)
        self.net: torch.nn.Module = self.model
        if env.enabled:
            seed_everything(config.seed + 10_007 * env.rank)  # each rank its own dropout draws
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=False,
            )
        self.loss_fn = ContrastiveLoss(
            temperature=config.temperature,
            learnable=config.learnable_temperature,
            beta=config.beta,
            metre_weight=config.metre_weight,
        ).to(self.device)
        self.params = list(self.model.parameters()) + list(self.loss_fn.parameters())
        # The learnable temperature is no weight: decaying it would pull the logit scale towards 1.
        groups: list[dict[str, Any]] = [
            {"params": list(self.model.parameters())},
            {"params": list(self.loss_fn.parameters()), "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=config.lr,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
        )
        self.steps_per_epoch = math.ceil(len(train_set) / self.global_batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(config.warmup_fraction * self.total_steps)
        self.evals_at = eval_steps(self.steps_per_epoch, config.evals_per_epoch if val_set is not None else 0)
        self.start_epoch, self.global_step = 0, 0
        self.window: deque[float] = deque(maxlen=config.selection_window)
        self.best_score: float | None = None
        self.history: list[dict[str, Any]] = []
        self.history_path = out / "history.jsonl"

    def resume(self) -> None:
        """Restore weights, optimizer, RNG and selection state from ``last/`` (configs must match)."""
        saved = read_json(self.out / "config.json")
        for key in ("model", "train"):
            if saved.get(key) != self.run_config[key]:
                diff = sorted(
                    k
                    for k in set(saved.get(key, {})) | set(self.run_config[key])
                    if saved.get(key, {}).get(k) != self.run_config[key].get(k)
                )
                raise CheckpointError(
                    f"Cannot resume {self.out}: its {key} config differs in {diff}. Resume with the "
                    "same settings, or use a new --out."
                )
        saved_world = saved.get("distributed", {}).get("world_size", 1)
        if saved_world != self.env.world_size:
            raise CheckpointError(
                f"Cannot resume {self.out}: it was trained by {saved_world} processes, this run has "
                f"{self.env.world_size}; the global batch and the schedule depend on it. Resume with "
                f"{saved_world} processes (torchrun --nnodes x --nproc_per_node), or use a new --out."
            )
        ckpt = resolve_checkpoint(self.out / "last")
        state = read_json(ckpt / "config.json")["state"]
        weights = load_extra_tensors(ckpt)
        self.model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        self.loss_fn.load_state_dict({k[len("loss.") :]: v for k, v in weights.items() if k.startswith("loss.")})
        restore_optimizer(self.opt, weights, state["param_groups"])
        self._restore_rng(weights)
        self.start_epoch, self.global_step = state["epoch"], state["global_step"]
        self.window.extend(state["window"])
        self.best_score = state["best_score"]
        if self.history_path.exists():
            lines = self.history_path.read_text().splitlines()
            self.history = [
                h for h in (json.loads(line) for line in lines if line.strip()) if h["epoch"] <= self.start_epoch
            ]
        barrier(self.env)  # every rank has read the run folder before rank 0 rewrites its history

    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        """The RNG states for ``last/``: this process's, or under torchrun every rank's (gathered)."""
        if not self.env.enabled:
            tensors = {"rng.torch": torch.get_rng_state()}
            if torch.cuda.is_available():
                tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
            return tensors
        states = gather_rng_states(self.env, device=self.device)
        return {f"rng.rank{rank}.{name}": value for rank, state in enumerate(states) for name, value in state.items()}

    def _restore_rng(self, weights: dict[str, torch.Tensor]) -> None:
        if self.env.enabled:
            prefix = f"rng.rank{self.env.rank}."
            torch.set_rng_state(weights[prefix + "torch"])
            if prefix + "cuda" in weights and self.device.type == "cuda":
                torch.cuda.set_rng_state(weights[prefix + "cuda"], self.device)
            return
        torch.set_rng_state(weights["rng.torch"])
        if "rng.cuda" in weights and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(list(weights["rng.cuda"]))

    def checkpoint_config(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"train": self.config.to_dict(), "data": self.data_info, **extra}

    def run(self) -> TrainResult:
        """Train from ``start_epoch`` to the last epoch; ``best/`` is the last weights when nothing validated.
        Only rank 0 writes (and keeps the history)."""
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "config.json", self.run_config)
            self.history_path.write_text("".join(json.dumps(h) + "\n" for h in self.history))
        bar = progress(
            desc="train",
            total=self.total_steps,
            initial=self.start_epoch * self.steps_per_epoch,
            enabled=self.show_progress,
        )
        started = time.perf_counter()
        for epoch in range(self.start_epoch, self.config.epochs):
            self.train_epoch(epoch, bar=bar, started=started)
            self.save_last(epoch)
        bar.close()
        if self.env.is_main and not (self.out / "best").exists():
            save_checkpoint(
                self.out / "best",
                model=self.model,
                config=self.checkpoint_config({"metrics": self.history[-1] if self.history else {}}),
            )
        barrier(self.env)
        return TrainResult(
            run_dir=self.out, best_checkpoint=self.out / "best", history=self.history, best_score=self.best_score
        )

    def train_epoch(self, epoch: int, *, bar: Any, started: float) -> None:
        """One pass over the training clips in a seeded order (the same on every rank; each takes its share of
        every global batch), validating at ``evals_at`` steps."""
        self.model.train()
        seeded = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_set), generator=seeded).numpy()
        running: list[float] = []
        size = self.global_batch_size
        for step in range(self.steps_per_epoch):
            idx = rank_share(order[step * size : (step + 1) * size], env=self.env)
            if len(idx) * self.env.world_size >= 2:  # a trailing batch of one clip has no negatives
                running.append(self.step(idx, epoch=epoch, step=step))
                bar.set_postfix(epoch=epoch + 1, loss=f"{running[-1]:.3f}")
            else:
                self.global_step += 1
            bar.update(1)
            if step in self.evals_at and self.val_set is not None and running:
                if self.env.is_main:
                    self.validate(
                        epoch=epoch, step=step, train_loss=float(np.mean(running)), time_s=time.perf_counter() - started
                    )
                barrier(self.env)
                running = []

    def step(self, idx: np.ndarray, *, epoch: int, step: int) -> float:
        """One optimizer step on the clips ``idx`` (this rank's share of the global batch); returns the loss of
        the global batch. On CUDA the forward runs under bf16 autocast, the loss in float32."""
        cfg = self.config
        batch = self._to_device(self.train_set.arrays(idx, rhythm=self.model.config.rhythm_branch))
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(
                self.global_step, total_steps=self.total_steps, warmup_steps=self.warmup_steps
            )
        share = (self.env.rank * len(idx), self.env.world_size * len(idx)) if self.env.enabled else None
        cuda = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda):
            out = forward_batch(
                self.model, batch, cfg, seed=cfg.seed * 1_000_003 + self.global_step, share=share, wrapped=self.net
            )
        out = {key: value.float() if value.is_floating_point() else value for key, value in out.items()}
        loss, parts = self.loss_fn(gather_outputs(out, env=self.env))
        if not torch.isfinite(loss):
            raise DataError(
                f"Training loss became {float(loss)} at epoch {epoch + 1}, step {step}. Check the features "
                "for extreme values, or lower --lr."
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.global_step += 1
        return float(parts["loss"])

    def _to_device(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        """Host arrays on the training device; on CUDA through pinned memory, copied without blocking."""
        if self.device.type != "cuda":
            return [torch.from_numpy(a).to(self.device) for a in arrays]
        return [torch.from_numpy(a).pin_memory().to(self.device, non_blocking=True) for a in arrays]

    def validate(self, *, epoch: int, step: int, train_loss: float, time_s: float) -> None:
        """Validation metrics, the moving-window selection score, and ``best/`` when it improved."""
        assert self.val_set is not None
        cfg = self.config
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "global_step": self.global_step,
            "time_s": round(time_s, 2),
            "lr": self.opt.param_groups[0]["lr"],
            "train_loss": train_loss,
        }
        row.update(validation_row(self.model, self.loss_fn, self.val_set, cfg, self.device))
        self.window.append(row[cfg.selection_metric])
        score = float(np.mean(self.window))
        row["window_score"] = score
        best = self.best_score
        better = best is None or (score < best if cfg.selection_lower_is_better else score > best)
        row["saved_best"] = bool(better)
        if better:
            self.best_score = score
            save_checkpoint(self.out / "best", model=self.model, config=self.checkpoint_config({"metrics": row}))
        self.history.append(row)
        with self.history_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def save_last(self, epoch: int) -> None:
        """``last/``: weights plus optimizer, RNG (every rank's) and selection state, so a resume continues exactly."""
        tensors, groups = optimizer_tensors(self.opt)
        tensors.update(self._rng_tensors())
        if not self.env.is_main:
            barrier(self.env)
            return
        tensors.update({f"loss.{k}": v.detach().cpu() for k, v in self.loss_fn.state_dict().items()})
        state = {
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "window": list(self.window),
            "best_score": self.best_score,
            "param_groups": groups,
        }
        save_checkpoint(
            self.out / "last", model=self.model, config=self.checkpoint_config({"state": state}), extra_tensors=tensors
        )
        if self.config.save_every and (epoch + 1) % self.config.save_every == 0:
            save_checkpoint(
                self.out / f"epoch_{epoch + 1:04d}",
                model=self.model,
                config=self.checkpoint_config({"epoch": epoch + 1}),
            )
        barrier(self.env)


def train(
    *,
    train_set: FeatureSet,
    val_set: FeatureSet | None,
    model_config: BlenderConfig,
    config: TrainConfig,
    out: str | os.PathLike[str],
    data_info: dict[str, Any] | None = None,
    resume: bool = False,
    show_progress: bool = True,
    env: DistEnv | None = None,
) -> TrainResult:
    """Train a Beat Blender on ``train_set``, select on ``val_set``, and write a run directory to ``out``.

    ``env`` (default: from the torchrun variables) makes this process one rank of a data-parallel run; the
    process group is joined (once per process) when the caller has not joined it. Ranks other than 0 return no
    history.
    """
    out = Path(out)
    env = DistEnv.from_environ() if env is None else env
    join_process_group(env, device=resolve_device(config.device, env=env))
    trainer = Trainer(
        train_set=train_set,
        val_set=val_set,
        model_config=model_config,
        config=config,
        out=out,
        data_info=data_info,
        show_progress=show_progress,
        env=env,
    )
    if (out / "last").exists() and not resume:
        raise ParameterError(f"{out} already holds a training run. Pass --resume to continue it, or a new --out.")
    if resume and (out / "last").exists():
        trainer.resume()
    return trainer.run()
