"""K-fold cross-validation over groups (source pairs), so no clip of a test pair is ever trained on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError


@dataclass(frozen=True)
class Fold:
    """Clip positions of one fold: ``val`` groups are held out of ``train`` too (for querybanks, selection)."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def group_folds(groups: Sequence[str], *, folds: int, seed: int, val_groups: int = 0) -> list[Fold]:
    """``folds`` folds whose test sets partition the groups, shuffled by ``seed``.

    Groups are dealt round-robin in a seeded random order, so fold sizes in groups differ by at most one.
    Of the other groups, ``val_groups`` (drawn with the same seed) form the validation part and the rest
    the training part. Every group is in exactly one of train/val/test in each fold.
    """
    names = sorted(set(groups))
    if folds < 2 or folds > len(names):
        raise ParameterError(f"folds={folds} with {len(names)} groups; expected 2 <= folds <= number of groups.")
    if val_groups < 0 or len(names) - -(-len(names) // folds) - val_groups < 1:
        raise ParameterError(
            f"val_groups={val_groups} leaves no training group with {len(names)} groups in "
            f"{folds} folds; use fewer validation groups or fewer folds."
        )
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    fold_of = {g: i % folds for i, g in enumerate(order)}
    codes = np.array([fold_of[g] for g in groups])
    out = []
    for k in range(folds):
        rest = [g for g in order if fold_of[g] != k]
        val = set(rest[len(rest) - val_groups :]) if val_groups else set()
        in_val = np.array([g in val for g in groups], dtype=bool)
        out.append(
            Fold(
                index=k,
                train=np.flatnonzero((codes != k) & ~in_val),
                val=np.flatnonzero(in_val),
                test=np.flatnonzero(codes == k),
            )
        )
    return out
