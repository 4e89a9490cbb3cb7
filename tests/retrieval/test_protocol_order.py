"""`evaluate` embeds the dance side in a seeded random order, as the bench does; pair order only behind a flag."""

from __future__ import annotations

import pytest
import torch

from beatdance.features.loading import load_features
from beatdance.features.official import write_official
from beatdance.model.blender import BlenderConfig
from beatdance.retrieval.embed import embed_featureset
from beatdance.retrieval.evaluate import evaluate_retrieval
from beatdance.retrieval.protocol import evaluate_model
from beatdance.synth.features import SynthFeatureConfig, generate_synthetic_features
from beatdance.train.config import TrainConfig
from beatdance.train.trainer import train


@pytest.mark.slow
def test_evaluate_equals_the_bench_protocol_for_official_and_flags_the_leaky_order(tmp_path):
    torch.set_num_threads(1)
    cfg = SynthFeatureConfig(
        num_train=96,
        num_val=8,
        num_test=80,
        music_dim=12,
        dance_dim=8,
        music_frames=20,
        dance_frames=20,
        latent_dim=4,
        seed=5,
    )
    write_official(tmp_path / "data", splits=generate_synthetic_features(cfg))
    train_set = load_features(tmp_path / "data", split="train")
    model = BlenderConfig(
        music_dim=12, dance_dim=8, embed_dim=16, num_layers=1, num_heads=2, ff_dim=32, variant="official"
    )
    train(
        train_set=train_set,
        val_set=None,
        model_config=model,
        out=tmp_path / "run",
        show_progress=False,
        config=TrainConfig(epochs=3, batch_size=32, lr=1e-3, evals_per_epoch=0, save_every=0, device="cpu"),
    )
    report = evaluate_model(model=tmp_path / "run", data=tmp_path / "data", dance_order_seed=7)
    # The bench's path: the test clips (more than one batch) embedded with the dance side in a seeded order.
    from beatdance.model.checkpoint import load_checkpoint

    net, _ = load_checkpoint(tmp_path / "run")
    music, dance = embed_featureset(
        net, load_features(tmp_path / "data", split="test"), batch_size=32, dance_order_seed=7
    )
    bench = evaluate_retrieval(music=music, dance=dance)
    for direction in ("m2d", "d2m"):
        assert report["results"]["none"][direction]["metrics"] == bench[direction]["metrics"]
    leaky = evaluate_model(model=tmp_path / "run", data=tmp_path / "data", pair_ordered_batches=True)
    assert leaky["settings"]["dance_order"].startswith("pair order: LEAKS")
    assert report["settings"]["dance_order"] == "random, seed 7"
    # official embeddings depend on their batch companions, so the order changes the numbers
    assert leaky["results"]["none"]["m2d"]["metrics"] != report["results"]["none"]["m2d"]["metrics"]
