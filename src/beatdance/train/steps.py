"""What one training run repeats: the learning-rate schedule, the validation points, one batch's forward pass
with the tempo augmentations, a validation pass, and the optimizer state in a saveable form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..features.featureset import FeatureSet
from ..model.blender import BeatBlender
from ..model.loss import ContrastiveLoss
from ..retrieval.embed import embed_featureset
from ..retrieval.evaluate import evaluate_retrieval
from .augment import mismatch, stretch_pairs
from .config import TrainConfig


def lr_factor(step: int, *, total_steps: int, warmup_steps: int) -> float:
    """Linear warmup from 0, then a half cosine down to 0 (HF ``get_cosine_schedule_with_warmup``)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress_frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress_frac)))


def eval_steps(steps_per_epoch: int, evals_per_epoch: int) -> set[int]:
    """0-based step indices after which to validate (official: linspace(0, n-1, k+1)[1:])."""
    if evals_per_epoch <= 0:
        return set()
    return {int(s) for s in np.linspace(0, steps_per_epoch - 1, evals_per_epoch + 1)[1:]}


def validation_row(
    model: BeatBlender, loss_fn: ContrastiveLoss, val: FeatureSet, cfg: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Validation loss and R@K/MedR/MeanR both ways of ``model`` on ``val`` (the dance side in a seeded order)."""
    music, dance = embed_featureset(model, val, batch_size=cfg.eval_batch_size, device=device, dance_order_seed=0)
    losses = []
    with torch.no_grad():
        for start in range(0, len(val), cfg.eval_batch_size):
            sl = slice(start, start + cfg.eval_batch_size)
            if len(val.ids[sl]) >= 2:
                assert music.beat_head is not None and dance.beat_head is not None  # embed_featureset gives both
                batch = {
                    "music_fuse": music.fuse[sl],
                    "dance_fuse": dance.fuse[sl],
                    "music_beat": music.beat_head[sl],
                    "dance_beat": dance.beat_head[sl],
                }
                losses.append(loss_fn({k: torch.from_numpy(v).to(device) for k, v in batch.items()})[1]["loss"])
    report = evaluate_retrieval(music=music, dance=dance, bs_ks=())
    row: dict[str, float] = {"val_loss": float(np.mean(losses)) if losses else float("nan")}
    for direction in ("m2d", "d2m"):
        for key, value in report[direction]["metrics"].items():
            row[f"{direction}/{key}"] = float(value)
    return row


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The optimizer's state as named tensors (for safetensors) and its parameter groups (for JSON)."""
    sd = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v.detach().cpu() for i, st in sd["state"].items() for k, v in st.items()}
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> None:
    """Load what :func:`optimizer_tensors` saved back into ``opt``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def forward_batch(
    model: BeatBlender,
    batch: list[torch.Tensor],
    config: TrainConfig,
    *,
    seed: int,
    share: tuple[int, int] | None = None,
    wrapped: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """The model's outputs on one batch, with the tempo augmentations of ``train.augment`` when asked for
    (seeded per step, so that a resumed run draws the same ones; ``share``: this rank's rows of the global
    batch's draws). ``wrapped`` (DDP) runs the model's forward when given."""
    cfg = model.config
    call = model if wrapped is None else wrapped
    if not cfg.rhythm_branch or (config.tempo_stretch_octaves == 0 and config.mismatch_octaves is None):
        return call(*batch)
    generator = torch.Generator().manual_seed(seed)
    music, dance, music_beat, dance_beat, music_rhythm, dance_rhythm = batch
    if config.tempo_stretch_octaves > 0:
        music_rhythm, dance_rhythm = stretch_pairs(
            music_rhythm,
            dance_rhythm,
            max_octaves=config.tempo_stretch_octaves,
            bins_per_octave=cfg.rhythm_bins_per_octave,
            generator=generator,
            share=share,
        )
    out = call(music, dance, music_beat, dance_beat, music_rhythm, dance_rhythm)
    if config.mismatch_octaves is not None:
        lo, hi = config.mismatch_octaves
        off_tempo = mismatch(
            dance_rhythm,
            min_octaves=lo,
            max_octaves=hi,
            bins_per_octave=cfg.rhythm_bins_per_octave,
            generator=generator,
            share=share,
        )
        out["dance_fuse_mismatch"] = model.encode_dance(dance, dance_beat, off_tempo)["fuse"]
    return out
