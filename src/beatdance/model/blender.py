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

Shapes: music (B, S, Dm), dance (B, S, Dd), beats (B, S, K) -> (B, S*d) embeddings, or (B, d) with ``pool="mean"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ParameterError

Variant = Literal["official", "temporal"]
EncoderKind = Literal["transformer", "mlp"]
Positional = Literal["learned", "sinusoidal", "none"]
Pool = Literal["flatten", "mean"]


@dataclass
class BlenderConfig:
    """Every size of the model. Defaults are the official ones (SPEC §2) with the fixed ``temporal`` variant."""

    music_dim: int = 768
    dance_dim: int = 512
    num_segments: int = 10
    beat_slots: int = 10
    embed_dim: int = 256
    num_layers: int = 6
    num_heads: int = 4
    ff_dim: int = 2048
    dropout_self: float = 0.3
    dropout_cross: float = 0.6
    beat_hidden: int = 64
    variant: Variant = "temporal"
    positional: Positional = "learned"
    beat_branch: bool = True
    encoder: EncoderKind = "transformer"
    pool: Pool = "flatten"

    def __post_init__(self) -> None:
        for name in ("music_dim", "dance_dim", "num_segments", "beat_slots", "embed_dim", "num_layers",
                     "num_heads", "ff_dim", "beat_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ParameterError(f"BlenderConfig.{name}={value!r} must be a positive integer.")
        if self.embed_dim % self.num_heads:
            raise ParameterError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "choose sizes such that embed_dim % num_heads == 0."
            )
        for name in ("dropout_self", "dropout_cross"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ParameterError(f"BlenderConfig.{name}={getattr(self, name)} must be in [0, 1).")
        if self.variant not in ("official", "temporal"):
            raise ParameterError(f"variant={self.variant!r}; expected 'official' or 'temporal'.")
        if self.positional not in ("learned", "sinusoidal", "none"):
            raise ParameterError(f"positional={self.positional!r}; expected 'learned', 'sinusoidal' or 'none'.")
        if self.pool not in ("flatten", "mean"):
            raise ParameterError(f"pool={self.pool!r}; expected 'flatten' (official) or 'mean' (average over segments).")
        if self.encoder not in ("transformer", "mlp"):
            raise ParameterError(f"encoder={self.encoder!r}; expected 'transformer' (official) or 'mlp' (no attention).")

    @property
    def output_dim(self) -> int:
        """Size of each clip embedding: S * d when flattened (2560 with the official sizes), d when mean-pooled."""
        return self.embed_dim if self.pool == "mean" else self.num_segments * self.embed_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlenderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"Model config has unknown keys {unknown}; it was written by another beatdance version "
                "or is not a BlenderConfig. Re-train or upgrade beatdance."
            )
        return cls(**data)


class _FeedForwardLayer(nn.Module):
    """A transformer encoder layer without its self-attention: post-LN residual feed-forward per position."""

    def __init__(self, cfg: BlenderConfig) -> None:
        super().__init__()
        self.ff = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.ff_dim), nn.ReLU(), nn.Dropout(cfg.dropout_self),
                                nn.Linear(cfg.ff_dim, cfg.embed_dim), nn.Dropout(cfg.dropout_self))
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


def _sinusoidal(num_positions: int, dim: int) -> Tensor:
    pos = torch.arange(num_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(num_positions, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


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
            self.feature_position = nn.Parameter(torch.randn(cfg.num_segments, d) * 0.02)
            self.beat_position = nn.Parameter(torch.randn(cfg.num_segments, d) * 0.02) if cfg.beat_branch else None
        elif cfg.variant == "temporal" and cfg.positional == "sinusoidal":
            pe = _sinusoidal(cfg.num_segments, d)
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
    """Music and dance branches. ``forward`` returns the four flattened embeddings of a batch."""

    def __init__(self, cfg: BlenderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.music = ModalityBranch(cfg, feature_dim=cfg.music_dim)
        self.dance = ModalityBranch(cfg, feature_dim=cfg.dance_dim)

    def _check(self, name: str, x: Tensor, dim: int) -> None:
        expected = (self.config.num_segments, dim)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ParameterError(
                f"{name} has shape {tuple(x.shape)}; expected (batch, {expected[0]}, {expected[1]}) from the model "
                "config. Load features with the same num_segments/beat_slots and encoder the model was trained on."
            )

    def encode_music(self, music: Tensor, music_beat: Tensor) -> dict[str, Tensor]:
        """Embeddings of music clips: ``{"fuse": (B, output_dim), "beat": (B, output_dim)}``."""
        self._check("music", music, self.config.music_dim)
        self._check("music_beat", music_beat, self.config.beat_slots)
        return self.music(music, music_beat)

    def encode_dance(self, dance: Tensor, dance_beat: Tensor) -> dict[str, Tensor]:
        """Embeddings of dance clips: ``{"fuse": (B, output_dim), "beat": (B, output_dim)}``."""
        self._check("dance", dance, self.config.dance_dim)
        self._check("dance_beat", dance_beat, self.config.beat_slots)
        return self.dance(dance, dance_beat)

    def forward(self, music: Tensor, dance: Tensor, music_beat: Tensor, dance_beat: Tensor) -> dict[str, Tensor]:
        m = self.encode_music(music, music_beat)
        d = self.encode_dance(dance, dance_beat)
        return {"music_fuse": m["fuse"], "music_beat": m["beat"], "dance_fuse": d["fuse"], "dance_beat": d["beat"]}
