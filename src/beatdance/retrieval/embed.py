"""Embedding a FeatureSet with a trained model, in a fixed order and batch size.

The ``official`` variant's embeddings depend on the batch (SPEC §2.4), so evaluation always embeds
in the dataset's order with a fixed ``batch_size`` (official: 32) and never shuffles; the ``temporal``
variant gives the same result for any batch size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..features.featureset import FeatureSet
from ..model.blender import BeatBlender
from .evaluate import ModalityEmbeddings


@torch.no_grad()
def embed_featureset(model: BeatBlender, features: FeatureSet, *, batch_size: int = 32,
                     device: str | torch.device = "cpu") -> tuple[ModalityEmbeddings, ModalityEmbeddings]:
    """(music, dance) embeddings of every clip: L2-normalised fused and beat-head vectors plus beat grids."""
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"music_fuse": [], "music_beat": [], "dance_fuse": [], "dance_beat": []}
    for start in range(0, len(features), batch_size):
        sl = slice(start, start + batch_size)
        batch = model(
            torch.from_numpy(features.music[sl]).to(device),
            torch.from_numpy(features.dance[sl]).to(device),
            torch.from_numpy(features.music_beat[sl]).to(device),
            torch.from_numpy(features.dance_beat[sl]).to(device),
        )
        for key in out:
            out[key].append(F.normalize(batch[key].float(), dim=-1).cpu().numpy())
    model.train(was_training)
    cat = {k: np.concatenate(v) if v else np.zeros((0, model.config.output_dim), np.float32) for k, v in out.items()}
    n = len(features)
    music = ModalityEmbeddings(fuse=cat["music_fuse"], beat_head=cat["music_beat"],
                               beat_grid=features.music_beat.reshape(n, -1), ids=list(features.ids),
                               groups=list(features.groups or features.ids))
    dance = ModalityEmbeddings(fuse=cat["dance_fuse"], beat_head=cat["dance_beat"],
                               beat_grid=features.dance_beat.reshape(n, -1), ids=list(features.ids),
                               groups=list(features.groups or features.ids))
    return music, dance
