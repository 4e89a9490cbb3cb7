"""Stage 5: the Trans-Temporal Beat Blender, its contrastive loss and checkpoints.

The torch modules load on first use, so that ``beatdance.model.config`` and ``beatdance.model.inference``
(what a search needs) import without torch.
"""

from __future__ import annotations

from typing import Any

from .config import BlenderConfig

__all__ = ["BeatBlender", "BlenderConfig", "ContrastiveLoss", "symmetric_info_nce"]


def __getattr__(name: str) -> Any:
    if name == "BeatBlender":
        from .blender import BeatBlender

        return BeatBlender
    if name in ("ContrastiveLoss", "symmetric_info_nce"):
        from . import loss

        return getattr(loss, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
