"""Stage 3: per-frame global features, through a registry of plug-in encoders."""

from .registry import Encoder, available_encoders, create_encoder, register_encoder

__all__ = ["Encoder", "available_encoders", "create_encoder", "register_encoder"]
