"""Named training recipes: the model sizes and training settings that go together.

``default`` is the recipe that wins ``make bench`` on real data and trains in about a minute on two
CPU cores: a small temporal model with mean-pooled clip embeddings, a sinusoidal encoding, the rhythm
branch, features z-scored by training statistics, the metre prior fitted on the training pairs
(``model.prior``), 40 epochs at lr 1e-3, the last epoch kept.
``official`` is the paper's GPU recipe (SPEC §2-3: d=256, 6 layers, 150 epochs at lr 1e-5, model
selection twice per epoch): hours on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError
from ..model.blender import BlenderConfig
from .config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """Overrides of ``BlenderConfig`` and ``TrainConfig`` defaults."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def configs(self, *, model: dict[str, Any], train: dict[str, Any]) -> tuple[BlenderConfig, TrainConfig]:
        """The recipe's configs with ``model`` and ``train`` (explicit user choices, None = not given) on top."""
        chosen_model = {**self.model, **{k: v for k, v in model.items() if v is not None}}
        chosen_train = {**self.train, **{k: v for k, v in train.items() if v is not None}}
        return BlenderConfig(**chosen_model), TrainConfig(**chosen_train)


RECIPES = {
    "default": Recipe(
        name="default",
        model={
            "embed_dim": 64,
            "num_layers": 2,
            "num_heads": 4,
            "ff_dim": 256,
            "positional": "sinusoidal",
            "pool": "mean",
            "rhythm_branch": True,
            "standardise": True,
            "metre_prior": True,
        },
        train={"epochs": 40, "lr": 1e-3, "evals_per_epoch": 0, "save_every": 0},
    ),
    "official": Recipe(name="official"),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name lists the known ones."""
    if name not in RECIPES:
        raise ParameterError(
            f"recipe={name!r} is unknown; expected one of {sorted(RECIPES)} "
            "(default: the bench winner; official: the paper's GPU recipe)."
        )
    return RECIPES[name]
