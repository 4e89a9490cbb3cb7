"""The Trans-Temporal Beat Blender: per-modality transformer encoders over global and beat features,
a beat-enhanced fusion, and a beat-query cross-attention head (SPEC §2).

Two variants share every layer and differ only in which axis attention runs over:

* ``official`` reproduces the released ``CLIPTransformer``: its ``nn.TransformerEncoder``s keep
  PyTorch's default ``batch_first=False`` while being fed (B, S, d) tensors, so self-attention mixes the
  clips of a mini-batch (separately at each segment position) and an embedding depends on its batch
  companions. No positional encoding.
* ``temporal`` (default) attends over the S segments of each clip, with a positional encoding, so an
  embedding depends on its own clip only and can be indexed.

``pool`` decides how a clip's S segment vectors become its embedding. ``"flatten"`` (official) joins
them, so the cosine of two clips is a sum over time-aligned segment pairs: right when music and dance
are beat-locked segment by segment. ``"mean"`` averages them into one d-vector, so the score no longer
demands that segment s of the music match segment s of the dance: better where the two are not locked
at that scale (the Dance-with-Melody motion capture, see README "Results"), and S times smaller.

Two switches exist for the paper's ablations: ``beat_branch=False`` drops the beat encoders (the fusion
sees zeros in place of the beat features and the beat head outputs zeros), and ``encoder="mlp"``
replaces every transformer layer by its position-wise feed-forward block alone, so nothing attends
across segments or clips (no trans-temporal mixing).

``rhythm_branch=True`` adds the rhythm branch of ``model.rhythm`` beside the global and beat branches:
tempo agreement under learned metre ratios, from each clip's rhythm array (C channels on the log-tempo
axis of ``beats.rhythm``). Its embedding is joined to the fused one with a learned weight w, each part
L2-normalised and scaled by sqrt(1 - w) and sqrt(w), so the fused cosine becomes (1 - w) x the global/beat
cosine + w x the rhythm cosine.

Shapes: music (B, S, Dm), dance (B, S, Dd), beats (B, S, K), rhythm (B, C, R) -> (B, S*d) embeddings, or
(B, d) with ``pool="mean"``, plus len(metre_ratios) * R with the rhythm branch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ParameterError
from .config import BlenderConfig, EncoderKind, Pool, Positional, Variant
from .inference import sinusoidal_table
from .prior import MetrePrior
from .rhythm import RhythmHead, metre_targets

__all__ = ["BeatBlender", "BlenderConfig", "EncoderKind", "ModalityBranch", "Pool", "Positional", "Variant"]


class _FeedForwardLayer(nn.Module):
    """A transformer encoder layer without its self-attention: post-LN residual feed-forward per position."""

    def __init__(self, cfg: BlenderConfig) -> None:
        super().__init__()
        self.ff = nn.Sequential(
            nn.Linear(cfg.embed_dim, cfg.ff_dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout_self),
            nn.Linear(cfg.ff_dim, cfg.embed_dim),
            nn.Dropout(cfg.dropout_self),
        )
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.ff(x))


def _encoder(cfg: BlenderConfig) -> nn.Module:
    if cfg.encoder == "mlp":
        return nn.Sequential(*(_FeedForwardLayer(cfg) for _ in range(cfg.num_layers)))
    layer = nn.TransformerEncoderLayer(
        d_model=cfg.embed_dim,
        nhead=cfg.num_heads,
        dim_feedforward=cfg.ff_dim,
        dropout=cfg.dropout_self,
        batch_first=cfg.variant == "temporal",
    )
    return nn.TransformerEncoder(layer, num_layers=cfg.num_layers, enable_nested_tensor=False)


class ModalityBranch(nn.Module):
    """One modality's half of the blender: features + beats -> (fused embedding, beat-head embedding)."""

    def __init__(self, cfg: BlenderConfig, *, feature_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        # Created in the official order, so a seed gives the same initial weights as before the switches.
        self.feature_linear = nn.Linear(feature_dim, d)
        if cfg.beat_branch:
            # Official: Linear(10, 64) then Linear(64, 256) with no activation between (SPEC §8.11).
            self.beat_linear = nn.Sequential(nn.Linear(cfg.beat_slots, cfg.beat_hidden), nn.Linear(cfg.beat_hidden, d))
        self.feature_encoder = _encoder(cfg)
        if cfg.beat_branch:
            self.beat_encoder = _encoder(cfg)
        self.fuse = nn.Linear(2 * d, d)
        if cfg.beat_branch:
            self.cross_attention = nn.MultiheadAttention(d, cfg.num_heads, dropout=cfg.dropout_cross, batch_first=True)
        if cfg.variant == "temporal" and cfg.positional == "learned":
            self.feature_position: nn.Parameter | None = nn.Parameter(torch.randn(cfg.num_segments, d) * 0.02)
            self.beat_position: nn.Parameter | None = (
                nn.Parameter(torch.randn(cfg.num_segments, d) * 0.02) if cfg.beat_branch else None
            )
        elif cfg.variant == "temporal" and cfg.positional == "sinusoidal":
            pe = torch.from_numpy(sinusoidal_table(num_positions=cfg.num_segments, dim=d))
            self.register_buffer("feature_position", pe, persistent=False)
            self.register_buffer("beat_position", pe.clone() if cfg.beat_branch else None, persistent=False)
        else:
            self.feature_position = None
            self.beat_position = None

    def forward(self, features: Tensor, beats: Tensor) -> dict[str, Tensor]:
        x = self.feature_linear(features)
        if self.feature_position is not None:
            x = x + self.feature_position
        x = self.feature_encoder(x)
        if not self.cfg.beat_branch:
            fused = self._out(self.fuse(torch.cat([x, torch.zeros_like(x)], dim=-1)))
            return {"fuse": fused, "beat": torch.zeros_like(fused)}
        b = self.beat_linear(beats)
        if self.beat_position is not None:
            b = b + self.beat_position
        b = self.beat_encoder(b)
        fused = self.fuse(torch.cat([x + b, x * b], dim=-1))
        head, _ = self.cross_attention(query=b, key=x, value=x, need_weights=False)
        return {"fuse": self._out(fused), "beat": self._out(head)}

    def _out(self, x: Tensor) -> Tensor:
        """(B, S, d) segment vectors -> (B, output_dim) clip embeddings."""
        return x.mean(dim=1) if self.cfg.pool == "mean" else x.reshape(x.shape[0], -1)


class BeatBlender(nn.Module):
    """Music and dance branches. ``forward`` returns the four flattened embeddings of a batch.

    With ``standardise``, every feature dimension is z-scored by statistics of the training split
    (:meth:`fit_standardisation`), kept as buffers in the weights, so every checkpoint, library and
    search applies exactly the scaling the model was trained with.

    With ``metre_prior``, ``prior`` holds the :class:`~beatdance.model.prior.MetrePrior` fitted on the training
    pairs (no weights: it is saved in the checkpoint's config), and embeddings for retrieval carry it.
    """

    def __init__(self, cfg: BlenderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.prior: MetrePrior | None = None
        if cfg.standardise:
            for name, dim in (("music", cfg.music_dim), ("dance", cfg.dance_dim)):
                self.register_buffer(f"{name}_mean", torch.zeros(dim))
                self.register_buffer(f"{name}_std", torch.ones(dim))
        self.music = ModalityBranch(cfg, feature_dim=cfg.music_dim)
        self.dance = ModalityBranch(cfg, feature_dim=cfg.dance_dim)
        if cfg.rhythm_branch:
            common: dict[str, Any] = {
                "channels": cfg.rhythm_channels,
                "bins": cfg.rhythm_bins,
                "bins_per_octave": cfg.rhythm_bins_per_octave,
                "ratios": cfg.metre_ratios,
                "hidden": cfg.rhythm_hidden,
                "dropout": cfg.dropout_self,
            }
            self.music_rhythm = RhythmHead(feature_dim=cfg.music_dim, shifted=True, **common)
            self.dance_rhythm = RhythmHead(feature_dim=cfg.dance_dim, shifted=False, **common)
            self.rhythm_logit = nn.Parameter(torch.tensor(math.log(cfg.rhythm_weight / (1.0 - cfg.rhythm_weight))))

    def _check(self, name: str, x: Tensor, dim: int) -> None:
        expected = (self.config.num_segments, dim)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ParameterError(
                f"{name} has shape {tuple(x.shape)}; expected (batch, {expected[0]}, {expected[1]}) from the model "
                "config. Load features with the same num_segments/beat_slots and encoder the model was trained on."
            )

    @torch.no_grad()
    def fit_standardisation(self, *, music: Tensor, dance: Tensor) -> None:
        """Set the z-score statistics from training features (N, S, D) of each modality."""
        if not self.config.standardise:
            raise ParameterError("this model was built with standardise=False; it has no statistics to fit.")
        for name, x in (("music", music), ("dance", dance)):
            flat = x.reshape(-1, x.shape[-1]).double()
            getattr(self, f"{name}_mean").copy_(flat.mean(dim=0).float())
            getattr(self, f"{name}_std").copy_((flat.std(dim=0, unbiased=False) + 1e-6).float())

    def _scaled(self, name: str, x: Tensor) -> Tensor:
        if not self.config.standardise:
            return x
        return (x - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def _check_rhythm(self, name: str, rhythm: Tensor | None) -> Tensor | None:
        cfg = self.config
        if not cfg.rhythm_branch:
            return None
        expected = (cfg.rhythm_channels, cfg.rhythm_bins)
        if rhythm is None or rhythm.ndim != 3 or tuple(rhythm.shape[1:]) != expected:
            got = None if rhythm is None else tuple(rhythm.shape)
            raise ParameterError(
                f"{name} is {got}; this model has a rhythm branch and expects (batch, {expected[0]}, {expected[1]}) "
                "rhythm arrays. Prepare the store with this beatdance version (it writes them), or train with "
                "--no-rhythm-branch."
            )
        return rhythm

    def _join(
        self, out: dict[str, Tensor], head: nn.Module | None, features: Tensor, rhythm: Tensor | None
    ) -> dict[str, Tensor]:
        if rhythm is None or head is None:
            return out
        w = torch.sigmoid(self.rhythm_logit)
        r, gate_logits = head(features.mean(dim=1), rhythm)
        return {
            "fuse": torch.cat([torch.sqrt(1 - w) * F.normalize(out["fuse"], dim=-1), torch.sqrt(w) * r], dim=-1),
            "beat": torch.cat([out["beat"], torch.zeros_like(r)], dim=-1),
            "metre_logits": gate_logits,
        }

    def encode_music(self, music: Tensor, music_beat: Tensor, music_rhythm: Tensor | None = None) -> dict[str, Tensor]:
        """Embeddings of music clips: ``{"fuse": (B, output_dim), "beat": (B, output_dim)}``."""
        self._check("music", music, self.config.music_dim)
        self._check("music_beat", music_beat, self.config.beat_slots)
        rhythm = self._check_rhythm("music_rhythm", music_rhythm)
        music = self._scaled("music", music)
        return self._join(self.music(music, music_beat), getattr(self, "music_rhythm", None), music, rhythm)

    def encode_dance(self, dance: Tensor, dance_beat: Tensor, dance_rhythm: Tensor | None = None) -> dict[str, Tensor]:
        """Embeddings of dance clips: ``{"fuse": (B, output_dim), "beat": (B, output_dim)}``."""
        self._check("dance", dance, self.config.dance_dim)
        self._check("dance_beat", dance_beat, self.config.beat_slots)
        rhythm = self._check_rhythm("dance_rhythm", dance_rhythm)
        dance = self._scaled("dance", dance)
        return self._join(self.dance(dance, dance_beat), getattr(self, "dance_rhythm", None), dance, rhythm)

    def forward(
        self,
        music: Tensor,
        dance: Tensor,
        music_beat: Tensor,
        dance_beat: Tensor,
        music_rhythm: Tensor | None = None,
        dance_rhythm: Tensor | None = None,
    ) -> dict[str, Tensor]:
        m = self.encode_music(music, music_beat, music_rhythm)
        d = self.encode_dance(dance, dance_beat, dance_rhythm)
        out = {"music_fuse": m["fuse"], "music_beat": m["beat"], "dance_fuse": d["fuse"], "dance_beat": d["beat"]}
        if music_rhythm is not None and dance_rhythm is not None and self.config.rhythm_branch:
            cfg = self.config
            out.update(
                music_metre_logits=m["metre_logits"],
                dance_metre_logits=d["metre_logits"],
                metre_target=metre_targets(
                    music_rhythm, dance_rhythm, ratios=cfg.metre_ratios, bins_per_octave=cfg.rhythm_bins_per_octave
                ),
            )
        return out
