"""Symmetric InfoNCE equals its written-out formula; beta and the temperature behave as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from beatdance.errors import ParameterError
from beatdance.model import ContrastiveLoss, symmetric_info_nce


def _brute(sims: torch.Tensor, scale: float) -> float:
    n = sims.shape[0]
    logits = (sims * scale).tolist()
    rows = -sum(logits[i][i] - math.log(sum(math.exp(v) for v in logits[i])) for i in range(n)) / n
    cols = -sum(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(n))) for j in range(n)) / n
    return 0.5 * (rows + cols)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``, one pair at a time in float64 numpy."""
    x, y = a.double().numpy(), b.double().numpy()
    return torch.tensor([[u @ v / (np.linalg.norm(u) * np.linalg.norm(v)) for v in y] for u in x])


def test_info_nce_matches_formula():
    sims = torch.rand(5, 5, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert symmetric_info_nce(sims, logit_scale=100.0).item() == pytest.approx(_brute(sims, 100.0), rel=1e-5)
    with pytest.raises(ParameterError, match="square"):
        symmetric_info_nce(torch.zeros(3, 4), logit_scale=1.0)


def test_total_is_fuse_plus_beta_beat_and_temperature_is_fixed_by_default():
    g = torch.Generator().manual_seed(1)
    out = {k: torch.randn(4, 20, generator=g) for k in ("music_fuse", "dance_fuse", "music_beat", "dance_beat")}
    loss = ContrastiveLoss(beta=0.4)
    total, parts = loss(out)
    fuse = _brute(_cosine(out["music_fuse"], out["dance_fuse"]), 100.0)  # L(S_fuse) and L(S_beat), written out
    beat = _brute(_cosine(out["music_beat"], out["dance_beat"]), 100.0)
    assert parts["loss_fuse"] == pytest.approx(fuse, rel=1e-5) and parts["loss_beat"] == pytest.approx(beat, rel=1e-5)
    assert total.item() == pytest.approx(fuse + 0.4 * beat, rel=1e-5)
    assert parts["logit_scale"] == pytest.approx(100.0, rel=1e-5)
    assert not list(loss.parameters())
    learnable = ContrastiveLoss(learnable=True, temperature=0.07)
    assert [p.shape for p in learnable.parameters()] == [torch.Size([])]
    assert learnable.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
