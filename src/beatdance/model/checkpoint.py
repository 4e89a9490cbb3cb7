"""Checkpoints: safetensors weights plus a JSON config, in a directory written atomically.

Layout of a checkpoint directory::

    model.safetensors   weights (never pickle)
    config.json         {"model": BlenderConfig, "train": ..., "data": ..., "metrics": ..., "beatdance": version}

A training run directory holds ``best/`` and ``last/`` checkpoints; :func:`resolve_checkpoint` accepts
either a checkpoint or a run directory (then ``best/``, falling back to ``last/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import CheckpointError
from ..features.featureset import FeatureSet
from ..util import atomic_write_json, read_json, resolve_dir, write_dir_atomically
from .config import BlenderConfig
from .prior import MetrePrior

if TYPE_CHECKING:  # torch loads only where weights are read or written, so a search can run without it
    import torch

    from .blender import BeatBlender

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: BeatBlender,
    config: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s weights and ``config`` (plus the model config) to checkpoint directory ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}

    def fill(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "beatdance-checkpoint", "version": "1"})
        if extra_tensors:
            save_file({k: v.contiguous() for k, v in extra_tensors.items()}, str(tmp / "extra.safetensors"))
        prior = {"prior": model.prior.to_dict()} if model.prior is not None else {}
        atomic_write_json(tmp / CONFIG, {**config, "model": model.config.to_dict(), **prior, "beatdance": __version__})

    write_dir_atomically(path, fill)
    return path


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory named by ``path`` (a checkpoint, or a run directory with best/ or last/), resolved
    to the version folder it names now (:func:`~beatdance.util.resolve_dir`), so weights and config come from one save."""
    path = Path(path)
    for candidate in map(resolve_dir, (path, path / "best", path / "last")):
        if (candidate / WEIGHTS).is_file() and (candidate / CONFIG).is_file():
            return candidate
    raise CheckpointError(
        f"No checkpoint found at {path}: expected {WEIGHTS} and {CONFIG} in it or in its best/ or last/ "
        "folder. Pass the --out folder of `beatdance train` or one of its checkpoint folders."
    )


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[BeatBlender, dict[str, Any]]:
    """Load a model and its saved config; a weight file that does not fit the config is a CheckpointError."""
    ckpt = resolve_checkpoint(path)
    config = read_json(ckpt / CONFIG)
    if "model" not in config:
        raise CheckpointError(f"{ckpt / CONFIG} has no 'model' entry; it was not written by beatdance.")
    from safetensors.torch import load_file

    from .blender import BeatBlender

    model = BeatBlender(BlenderConfig.from_dict(config["model"]))
    try:
        state = load_file(str(ckpt / WEIGHTS), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(
            f"Cannot read weights {ckpt / WEIGHTS}: {exc}. The file is corrupt or truncated; re-train or re-copy it."
        ) from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"Weights in {ckpt / WEIGHTS} do not fit the model config in {ckpt / CONFIG} "
            f"(a checkpoint from another config?): {str(exc).splitlines()[0]}"
        ) from exc
    model.prior = load_prior(config, source=str(ckpt / CONFIG))
    return model.to(device).eval(), config


def load_prior(config: dict[str, Any], *, source: str) -> MetrePrior | None:
    """The metre prior a checkpoint's config carries (None for a model without one); a model config that asks
    for a prior its checkpoint lacks is a CheckpointError."""
    if not config["model"].get("metre_prior"):
        return None
    if "prior" not in config:
        raise CheckpointError(
            f"{source}: the model uses a metre prior but the checkpoint has none (an interrupted save?); re-train."
        )
    return MetrePrior.from_dict(config["prior"], source=source)


def load_extra_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors saved next to the weights with ``extra_tensors`` (e.g. optimizer state); empty if none."""
    from safetensors.torch import load_file

    f = resolve_checkpoint(path) / "extra.safetensors"
    return load_file(str(f)) if f.is_file() else {}


def check_compatible(model_config: BlenderConfig, features: FeatureSet, *, source: str) -> None:
    """Raise CheckpointError when ``features`` cannot feed a model built with ``model_config``."""
    got = (features.music_dim, features.dance_dim, features.num_segments, features.beat_slots)
    want = (model_config.music_dim, model_config.dance_dim, model_config.num_segments, model_config.beat_slots)
    if got != want:
        raise CheckpointError(
            f"Features from {source} have (music_dim, dance_dim, segments, beat_slots) = {got}, but the model "
            f"expects {want}. Use the same feature extractors and segment settings as the model, or train a new one."
        )
    if model_config.uses_rhythm:
        shape = None if features.music_rhythm is None else tuple(features.music_rhythm.shape[1:])
        if shape != (model_config.rhythm_channels, model_config.rhythm_bins):
            raise CheckpointError(
                f"Features from {source} have rhythm arrays of shape {shape}, but the model's rhythm branch and "
                f"metre prior expect {(model_config.rhythm_channels, model_config.rhythm_bins)}. Prepare the store "
                "with the model's rhythm settings (this beatdance version writes them), or train with "
                "--no-rhythm-branch --no-metre-prior."
            )
