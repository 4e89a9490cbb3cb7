"""Symmetric InfoNCE on cosine similarities, as in the official ``CLIPLoss`` (SPEC §3.3).

total = L(S_fuse) + beta * L(S_beat), where S_* are music x dance cosine similarities and
L(S) = 1/2 [CE over rows + CE over columns] of logit_scale * S with the diagonal as targets.
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


def symmetric_info_nce(sims: Tensor, *, logit_scale: Tensor | float) -> Tensor:
    """Mean of the row-wise and column-wise cross-entropy of ``logit_scale * sims`` against the diagonal."""
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1]:
        raise ParameterError(f"sims has shape {tuple(sims.shape)}; expected a square (N, N) matrix of paired items.")
    logits = sims * logit_scale
    target = torch.arange(sims.shape[0], device=sims.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ContrastiveLoss(nn.Module):
    """L(fuse) + beta * L(beat head), with a fixed (official: 0.01) or learnable temperature.

    A learnable temperature is stored as log(1/T) and clamped to at most log(100), the official bound.
    """

    max_log_scale = math.log(100.0)

    def __init__(self, *, temperature: float = 0.01, learnable: bool = False, beta: float = 0.4) -> None:
        super().__init__()
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
        fuse = symmetric_info_nce(cosine_matrix(out["music_fuse"], out["dance_fuse"]), logit_scale=scale)
        beat = symmetric_info_nce(cosine_matrix(out["music_beat"], out["dance_beat"]), logit_scale=scale)
        total = fuse + self.beta * beat
        return total, {"loss": float(total.detach()), "loss_fuse": float(fuse.detach()),
                       "loss_beat": float(beat.detach()), "logit_scale": float(scale.detach())}
