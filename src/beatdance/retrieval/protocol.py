"""Evaluating a trained checkpoint on a dataset split, with and without the hubness reducer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from ..errors import CheckpointError
from ..features.featureset import FeatureSet
from ..features.loading import dataset_config, load_features
from ..model.checkpoint import check_compatible, load_checkpoint
from ..train.distributed import resolve_device
from .embed import embed_featureset
from .evaluate import evaluate_retrieval

Hubness = Literal["none", "is", "dis"]


def check_same_extractors(saved: dict[str, Any], current: dict[str, Any], *, data: Path) -> None:
    """Raise CheckpointError if the model was trained on features made by other extractor settings."""
    a, b = saved.get("store_config"), current.get("store_config")
    if a is not None and b is not None and a != b:
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise CheckpointError(
            f"{data} was prepared with other extractor settings than the model's training data (differs in {keys}). "
            "Re-prepare the media with the model's settings, or train a model on this store."
        )


def evaluate_model(
    *,
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    split: str = "test",
    hubness: Hubness = "none",
    querybank_split: str = "train",
    k: int = 1,
    beta: float = 20.0,
    beat_weight_head: float = 0.0,
    beat_weight_align: float = 0.0,
    batch_size: int = 32,
    chunk_size: int = 1024,
    device: str = "cpu",
    dance_order_seed: int = 0,
    pair_ordered_batches: bool = False,
) -> dict[str, Any]:
    """Metrics of checkpoint ``model`` on ``split`` of ``data``: always without hubness reduction
    ("none"), plus with it when ``hubness`` is "is" or "dis" (querybank: ``querybank_split``).

    The dance side is embedded in the order drawn from ``dance_order_seed``, as in the bench: embedding
    both sides in pair order leaks the pairing through the ``official`` variant's attention across the
    batch (``retrieval.embed``). ``pair_ordered_batches`` reproduces that leaky protocol (the official
    code's) and labels the report with it. ``device``: auto, cpu or cuda[:N] (a missing GPU: ParameterError).
    """
    data = Path(data)
    device = str(resolve_device(device))
    net, config = load_checkpoint(model, device=device)
    check_same_extractors(config.get("data", {}), dataset_config(data), data=data)
    cfg = net.config

    def load(name: str) -> FeatureSet:
        fs = load_features(data, split=name, num_segments=cfg.num_segments, slots=cfg.beat_slots)
        check_compatible(cfg, fs, source=f"{data} split {name!r}")
        return fs

    test = load(split)
    order = None if pair_ordered_batches else dance_order_seed
    music, dance = embed_featureset(net, test, batch_size=batch_size, device=device, dance_order_seed=order)
    weights: dict[str, Any] = {"beat_weight_head": beat_weight_head, "beat_weight_align": beat_weight_align}
    results = {"none": evaluate_retrieval(music=music, dance=dance, chunk_size=chunk_size, **weights)}
    if hubness != "none":
        bank = load(querybank_split)
        bank_music, bank_dance = embed_featureset(
            net, bank, batch_size=batch_size, device=device, dance_order_seed=order
        )
        results[hubness] = evaluate_retrieval(
            music=music,
            dance=dance,
            bank_music=bank_music,
            bank_dance=bank_dance,
            hubness=hubness,
            k=k,
            beta=beta,
            chunk_size=chunk_size,
            **weights,
        )
    return {
        "model": str(model),
        "data": str(data),
        "split": split,
        "num_clips": len(test),
        "variant": cfg.variant,
        "settings": {
            "hubness": hubness,
            "querybank_split": querybank_split if hubness != "none" else None,
            "k": k,
            "beta": beta,
            **weights,
            "batch_size": batch_size,
            "dance_order": (
                "pair order: LEAKS the pairing for the official variant"
                if pair_ordered_batches
                else f"random, seed {dance_order_seed}"
            ),
        },
        "results": results,
    }
