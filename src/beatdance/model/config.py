"""The Beat Blender's sizes and switches (:class:`BlenderConfig`), importable without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ..beats.rhythm import RHYTHM_CHANNELS, RhythmConfig
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
    rhythm_branch: bool = False
    rhythm_channels: int = len(RHYTHM_CHANNELS)
    rhythm_bins: int = RhythmConfig().num_bins
    rhythm_bins_per_octave: int = RhythmConfig().bins_per_octave
    metre_ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)
    rhythm_weight: float = 0.5
    rhythm_hidden: int = 64
    standardise: bool = False
    metre_prior: bool = False

    def __post_init__(self) -> None:
        for name in (
            "music_dim",
            "dance_dim",
            "num_segments",
            "beat_slots",
            "embed_dim",
            "num_layers",
            "num_heads",
            "ff_dim",
            "beat_hidden",
            "rhythm_channels",
            "rhythm_bins",
            "rhythm_bins_per_octave",
            "rhythm_hidden",
        ):
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
            raise ParameterError(
                f"pool={self.pool!r}; expected 'flatten' (official) or 'mean' (average over segments)."
            )
        if self.encoder not in ("transformer", "mlp"):
            raise ParameterError(
                f"encoder={self.encoder!r}; expected 'transformer' (official) or 'mlp' (no attention)."
            )
        self.metre_ratios = tuple(float(r) for r in self.metre_ratios)
        if not self.metre_ratios or not all(r > 0 for r in self.metre_ratios):
            raise ParameterError(
                f"metre_ratios={self.metre_ratios}; expected positive music/dance tempo ratios, e.g. (0.5, 1, 2, 3, 4)."
            )
        if not 0.0 < self.rhythm_weight < 1.0:
            raise ParameterError(
                f"rhythm_weight={self.rhythm_weight} must be in (0, 1): the rhythm part's initial share."
            )

    @property
    def output_dim(self) -> int:
        """Size of each clip embedding: S * d when flattened (2560 with the official sizes), d when mean-pooled."""
        base = self.embed_dim if self.pool == "mean" else self.num_segments * self.embed_dim
        return base + self.rhythm_dim

    @property
    def uses_rhythm(self) -> bool:
        """Whether embedding a clip needs its rhythm arrays (the rhythm branch, or the metre prior)."""
        return self.rhythm_branch or self.metre_prior

    @property
    def rhythm_dim(self) -> int:
        """Size of the rhythm part of each embedding (0 without the rhythm branch)."""
        return len(self.metre_ratios) * self.rhythm_bins if self.rhythm_branch else 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metre_ratios"] = list(self.metre_ratios)  # as it reads back from JSON
        return data

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
