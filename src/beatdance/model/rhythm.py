"""The rhythm branch: tempo agreement under learned metre ratios, as a dot product of two embeddings.

Inputs are the rhythm arrays of ``beats.rhythm`` (C channels over B bins of log2 tempo). Each side
mixes its channels into one tempo profile p (learned non-negative channel weights). The music side
then lays its profile out once per metre ratio r in ``metre_ratios`` (music tempo / dance tempo),
moved down the axis by log2 r, and the dance side once per ratio unmoved. Each copy is weighted by a
gate, a softmax over the ratios predicted from that side's own content (pooled global features and
tempograms: what style is this?). The dot product of the two embeddings is

    sum_r  g_r(music) h_r(dance) <shift_r p_music, p_dance>

so a waltz song at 87 BPM agrees with a dance whose bar is at 29 BPM, when both gates say "3". The
gates are trained on each pair's own tempo ratio (:func:`metre_targets`, a cross-entropy beside the
contrastive loss) as well as through the contrastive loss. Both
embeddings are L2-normalised, and ``BeatBlender`` joins them to the fused embedding with a learned
weight, so a cosine of the joined vectors is (1 - w) x fused cosine + w x rhythm cosine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import inference


def shift_bins(x: Tensor, octaves: Tensor, *, bins_per_octave: int) -> Tensor:
    """(B, C, N) arrays moved up the tempo axis by ``octaves`` (B,) each (linear interpolation, zeros enter):
    what a time-stretch by 2**octaves does to a rhythm array."""
    n = x.shape[-1]
    pos = torch.arange(n, device=x.device, dtype=torch.float32)[None, :] - octaves[:, None].float() * bins_per_octave
    lo = torch.floor(pos)
    frac = (pos - lo)[:, None, :]
    out = torch.zeros_like(x)
    for offset, weight in ((0, 1.0 - frac), (1, frac)):
        idx = (lo + offset).long()
        ok = ((idx >= 0) & (idx < n))[:, None, :]
        gathered = torch.gather(x, 2, idx.clamp(0, n - 1)[:, None, :].expand(-1, x.shape[1], -1))
        out = out + torch.where(ok, gathered * weight, torch.zeros_like(gathered))
    return out


def shift_matrix(*, bins: int, bins_per_octave: int, octaves: float) -> Tensor:
    """(bins, bins) matrix M with x @ M.T = x moved up the axis by ``octaves`` (see :func:`shift_bins`)."""
    return torch.from_numpy(inference.shift_matrix(bins=bins, bins_per_octave=bins_per_octave, octaves=octaves))


class RhythmHead(nn.Module):
    """One side's rhythm embedding: (B, D) pooled features + (B, C, bins) rhythm -> (B, ratios * bins),
    and the gate logits (B, ratios) it was weighted with."""

    def __init__(
        self,
        *,
        feature_dim: int,
        channels: int,
        bins: int,
        bins_per_octave: int,
        ratios: tuple[float, ...],
        shifted: bool,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        # Start from the precise tempo channel (0); the tempograms may join as training finds them useful.
        init = torch.full((channels,), -3.0)
        init[0] = 3.0
        self.channel_logits = nn.Parameter(init)
        # The gate sees the content and the tempograms, not the exact tempo (channel 0): the metre is a
        # matter of style, and a gate that saw the tempo could learn songs by heart instead.
        self.gate = nn.Sequential(
            nn.Linear(feature_dim + (channels - 1) * bins, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, len(ratios)),
        )
        if shifted:
            mats = torch.stack(
                [shift_matrix(bins=bins, bins_per_octave=bins_per_octave, octaves=-math.log2(r)) for r in ratios]
            )
        else:
            mats = torch.eye(bins).expand(len(ratios), bins, bins).clone()
        self.register_buffer("shifts", mats, persistent=False)

    def forward(self, pooled: Tensor, rhythm: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.gate(torch.cat([pooled, rhythm[:, 1:].flatten(1)], dim=1))
        profile = torch.einsum("c,bcn->bn", F.softplus(self.channel_logits), rhythm)
        copies = torch.einsum("kmn,bn->bkm", self.shifts, profile) * torch.softmax(logits, dim=-1).detach()[:, :, None]
        return F.normalize(copies.flatten(1), dim=-1), logits


def metre_targets(
    music_rhythm: Tensor,
    dance_rhythm: Tensor,
    *,
    ratios: tuple[float, ...],
    bins_per_octave: int,
    tolerance_octaves: float = 0.1,
) -> Tensor:
    """(B,) index of the metre ratio each training pair shows, -1 where none is within ``tolerance_octaves``.

    The ratio of a pair is read off the tempo channels (0) of its two rhythm arrays: music tempo over
    dance tempo, e.g. 87 / 29 = 3 for a waltz danced once a bar. The gates are taught to predict it from
    each side's content alone, so that at search time a song and a dance agree on their metre level.
    """
    octaves = (music_rhythm[:, 0].argmax(dim=1) - dance_rhythm[:, 0].argmax(dim=1)).float() / bins_per_octave
    known = (music_rhythm[:, 0].amax(dim=1) > 0) & (dance_rhythm[:, 0].amax(dim=1) > 0)
    centres = torch.log2(torch.tensor(ratios, dtype=torch.float32, device=octaves.device))
    distance = (octaves[:, None] - centres[None, :]).abs()
    best = distance.argmin(dim=1)
    ok = known & (distance.gather(1, best[:, None])[:, 0] <= tolerance_octaves)
    return torch.where(ok, best, torch.full_like(best, -1))
