"""Training settings. Defaults are the official hyper-parameters (SPEC §3.4-3.5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ParameterError

DIRECTIONS = ("m2d", "d2m")
METRICS = ("R@1", "R@5", "R@10", "R@50", "R@100", "MedR", "MeanR", "AVG")


@dataclass
class TrainConfig:
    """How to train. ``selection_metric`` is "<direction>/<metric>" (official: m2d/AVG), averaged over the
    last ``selection_window`` evaluations (official: 5, i.e. 2.5 epochs at 2 evaluations per epoch)."""

    epochs: int = 150
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.2
    adam_eps: float = 1e-6
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    seed: int = 24
    beta: float = 0.4
    metre_weight: float = 1.0
    tempo_stretch_octaves: float = 0.0
    mismatch_octaves: tuple[float, float] | None = None
    temperature: float = 0.01
    learnable_temperature: bool = False
    evals_per_epoch: int = 2
    eval_batch_size: int = 32
    selection_metric: str = "m2d/AVG"
    selection_window: int = 5
    save_every: int = 50
    train_split: str = "train"
    val_split: str = "val"
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "eval_batch_size", "selection_window")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ParameterError(f"{name}={getattr(self, name)} must be a positive integer.")
        if not 0.0 <= self.tempo_stretch_octaves <= 1.0:
            raise ParameterError(
                f"tempo_stretch_octaves={self.tempo_stretch_octaves} must be in [0, 1] (0: off; "
                "0.1 stretches pairs by up to 7 %)."
            )
        if self.mismatch_octaves is not None:
            lo, hi = self.mismatch_octaves = (float(self.mismatch_octaves[0]), float(self.mismatch_octaves[1]))
            if not 0.0 < lo <= hi <= 1.0:
                raise ParameterError(
                    f"mismatch_octaves={self.mismatch_octaves}; expected (min, max) with "
                    "0 < min <= max <= 1, e.g. (0.04, 0.15), or None for no mismatched negatives."
                )
        if self.save_every < 0:
            raise ParameterError(f"save_every={self.save_every} must be >= 0 (0: keep best/ and last/ only).")
        if self.evals_per_epoch < 0:
            raise ParameterError(f"evals_per_epoch={self.evals_per_epoch} must be >= 0 (0 turns validation off).")
        if self.lr <= 0:
            raise ParameterError(f"lr={self.lr} must be strictly positive (official: 1e-5).")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ParameterError(f"warmup_fraction={self.warmup_fraction} must be in [0, 1) (official: 0.1).")
        direction, _, metric = self.selection_metric.partition("/")
        if direction not in DIRECTIONS or metric not in METRICS:
            raise ParameterError(
                f"selection_metric={self.selection_metric!r}; expected '<direction>/<metric>' with direction in "
                f"{DIRECTIONS} and metric in {METRICS}, e.g. 'm2d/AVG' (official)."
            )

    @property
    def selection_lower_is_better(self) -> bool:
        return self.selection_metric.endswith(("MedR", "MeanR"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mismatch_octaves"] = None if self.mismatch_octaves is None else list(self.mismatch_octaves)
        return data
