"""Symmetric InfoNCE on cosine similarities, as in the official ``CLIPLoss`` (SPEC §3.3).

total = L(S_fuse) + beta * L(S_beat), where S_* are music x dance cosine similarities and
L(S) = 1/2 [CE over rows + CE over columns] of logit_scale * S with the diagonal as targets.
With the rhythm branch, + metre_weight * 1/2 [CE(music metre gate) + CE(dance metre gate)] against each
pair's own tempo ratio (``model.rhythm.metre_targets``; pairs without one are ignored).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ParameterError


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    """(Na, Nb) cosine similarities between the rows of ``a`` and ``b``."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def symmetric_info_nce(
    sims: Tensor, *, logit_scale: Tensor | float, extra_row_negatives: Tensor | None = None
) -> Tensor:
    """Mean of the row-wise and column-wise cross-entropy of ``logit_scale * sims`` against the diagonal.

    ``extra_row_negatives`` (N, M) are further similarities that count as negatives of the rows only
    (music queries): the tempo-mismatched dances of ``train.augment``.
    """
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1]:
        raise ParameterError(f"sims has shape {tuple(sims.shape)}; expected a square (N, N) matrix of paired items.")
    logits = sims * logit_scale
    target = torch.arange(sims.shape[0], device=sims.device)
    rows = logits if extra_row_negatives is None else torch.cat([logits, extra_row_negatives * logit_scale], dim=1)
    return 0.5 * (F.cross_entropy(rows, target) + F.cross_entropy(logits.T, target))


class ContrastiveLoss(nn.Module):
    """L(fuse) + beta * L(beat head), with a fixed (official: 0.01) or learnable temperature.

    A learnable temperature is stored as log(1/T) and clamped to at most log(100), the official bound.
    """

    max_log_scale = math.log(100.0)

    def __init__(
        self, *, temperature: float = 0.01, learnable: bool = False, beta: float = 0.4, metre_weight: float = 1.0
    ) -> None:
        super().__init__()
        if metre_weight < 0:
            raise ParameterError(f"metre_weight={metre_weight} must be >= 0 (0: metre gates learn from InfoNCE only).")
        self.metre_weight = metre_weight
        if temperature <= 0:
            raise ParameterError(f"temperature={temperature} must be strictly positive (official: 0.01).")
        if beta < 0:
            raise ParameterError(f"beta={beta} must be >= 0 (official: 0.4).")
        self.beta = beta
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learnable:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)

    @property
    def logit_scale(self) -> Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, out: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        scale = self.logit_scale
        mismatched = out.get("dance_fuse_mismatch")
        extra = None if mismatched is None else cosine_matrix(out["music_fuse"], mismatched)
        fuse = symmetric_info_nce(
            cosine_matrix(out["music_fuse"], out["dance_fuse"]), logit_scale=scale, extra_row_negatives=extra
        )
        beat = symmetric_info_nce(cosine_matrix(out["music_beat"], out["dance_beat"]), logit_scale=scale)
        total = fuse + self.beta * beat
        parts = {
            "loss_fuse": float(fuse.detach()),
            "loss_beat": float(beat.detach()),
            "logit_scale": float(scale.detach()),
        }
        target = out.get("metre_target")
        if target is not None and bool((target >= 0).any()):
            metre = 0.5 * (
                F.cross_entropy(out["music_metre_logits"], target, ignore_index=-1)
                + F.cross_entropy(out["dance_metre_logits"], target, ignore_index=-1)
            )
            total = total + self.metre_weight * metre
            parts["loss_metre"] = float(metre.detach())
        return total, {"loss": float(total.detach()), **parts}
