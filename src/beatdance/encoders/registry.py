"""A registry that maps an encoder name to a class with ``dim``, ``fps`` and ``encode``.

Encoders are plug-ins: ``register_encoder("name")`` on a class makes it available to
``beatdance prepare --music-encoder name`` and to :func:`create_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np

from ..errors import ParameterError
from ..media.types import MediaClip

Modality = Literal["music", "dance"]
Stream = Literal["audio", "frames", "motion"]


class Encoder:
    """Base class of feature encoders.

    Subclasses set ``name``, ``modality`` and ``needs`` (the MediaClip streams they read), and
    implement ``dim``, ``fps`` and ``encode``. ``config()`` returns every setting that changes the
    output; it is saved in the feature store so that a mismatch is caught when loading.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Modality]
    needs: ClassVar[frozenset[str]] = frozenset()

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def fps(self) -> float:
        raise NotImplementedError

    def encode(self, clip: MediaClip) -> np.ndarray:
        """Per-frame features of ``clip``: float32 array of shape (T, dim) at ``fps`` frames per second."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "fps": self.fps}


_REGISTRY: dict[str, type[Encoder]] = {}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator that registers an encoder under ``name``."""

    def deco(cls: type[Encoder]) -> type[Encoder]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ParameterError(f"Encoder name {name!r} is already registered by {_REGISTRY[name].__name__}.")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


_BUILTIN_MODULES = {"audio-mel": "audio_mel", "pose": "pose", "clip": "clip", "mert": "mert"}


def _load_builtins(only: str | None = None) -> None:
    """Import the built-in encoder modules (all, or the one registering ``only``): their decorators register them.

    One name imports one module, so a search with the built-in audio encoder does not pay for torch-based
    plug-ins it never uses.
    """
    import importlib

    modules = _BUILTIN_MODULES.values() if only not in _BUILTIN_MODULES else [_BUILTIN_MODULES[only]]
    for mod in modules:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:  # a module not written yet or an optional dependency missing
            if exc.name and exc.name.startswith(__package__ or "beatdance"):
                continue
            raise


def available_encoders(modality: Modality | None = None) -> list[str]:
    """Names of the registered encoders, optionally only those of one modality."""
    _load_builtins()
    return sorted(n for n, c in _REGISTRY.items() if modality is None or c.modality == modality)


def create_encoder(name: str, **kwargs: Any) -> Encoder:
    """Instantiate the encoder registered as ``name`` with keyword settings."""
    _load_builtins(only=name)
    if name not in _REGISTRY:
        raise ParameterError(
            f"Unknown encoder {name!r}. Expected one of {sorted(_REGISTRY)}; "
            "register your own with @beatdance.encoders.register_encoder('name')."
        )
    return _REGISTRY[name](**kwargs)
