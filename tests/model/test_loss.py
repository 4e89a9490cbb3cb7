"""Symmetric InfoNCE equals its written-out formula; beta and the temperature behave as documented."""

from __future__ import annotations

import math

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
    assert total.item() == pytest.approx(parts["loss_fuse"] + 0.4 * parts["loss_beat"], rel=1e-6)
    assert parts["logit_scale"] == pytest.approx(100.0, rel=1e-5)
    assert not list(loss.parameters())
    learnable = ContrastiveLoss(learnable=True, temperature=0.07)
    assert [p.shape for p in learnable.parameters()] == [torch.Size([])]
    assert learnable.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
