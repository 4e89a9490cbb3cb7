"""Stage 5: the Trans-Temporal Beat Blender, its contrastive loss and checkpoints."""

from .blender import BeatBlender, BlenderConfig
from .loss import ContrastiveLoss, symmetric_info_nce

__all__ = ["BeatBlender", "BlenderConfig", "ContrastiveLoss", "symmetric_info_nce"]
