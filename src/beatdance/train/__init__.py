"""Stage 7: contrastive training with validation-based model selection."""

from .config import TrainConfig
from .trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
