"""NumpyBlender embeds exactly as BeatBlender in eval mode, for every switch of BlenderConfig, from a saved checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdance.errors import ParameterError
from beatdance.model.blender import BeatBlender, BlenderConfig
from beatdance.model.checkpoint import load_checkpoint, save_checkpoint
from beatdance.model.inference import NumpyBlender, TorchEncoder, query_encoder

SMALL = {"music_dim": 12, "dance_dim": 9, "num_segments": 5, "beat_slots": 4, "embed_dim": 16, "ff_dim": 32}
CONFIGS = {
    "default recipe": {
        "num_layers": 2,
        "positional": "sinusoidal",
        "pool": "mean",
        "rhythm_branch": True,
        "standardise": True,
    },
    "official": {"variant": "official", "num_layers": 2},
    "learned positions, flatten": {"positional": "learned", "num_layers": 1},
    "no beat branch": {"beat_branch": False, "num_layers": 2, "positional": "none"},
    "mlp encoder": {"encoder": "mlp", "num_layers": 2, "rhythm_branch": True},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_numpy_embeddings_equal_torch(name, tmp_path):
    torch.manual_seed(0)
    net = BeatBlender(BlenderConfig(**SMALL, **CONFIGS[name])).eval()
    cfg = net.config
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for p in net.parameters():  # weights away from their initial values (e.g. the position tables at 0)
            p.add_(torch.from_numpy(rng.normal(scale=0.1, size=tuple(p.shape)).astype(np.float32)))
        if cfg.standardise:
            for m in ("music", "dance"):
                getattr(net, f"{m}_mean").copy_(torch.from_numpy(rng.normal(size=getattr(cfg, f"{m}_dim"))))
                getattr(net, f"{m}_std").copy_(torch.from_numpy(rng.uniform(0.5, 2.0, size=getattr(cfg, f"{m}_dim"))))
    numpy_net = NumpyBlender.load(save_checkpoint(tmp_path / "ckpt", model=net, config={}))
    for modality in ("music", "dance"):
        dim = getattr(cfg, f"{modality}_dim")
        inputs = [
            rng.normal(size=(3, cfg.num_segments, dim)).astype(np.float32),
            (rng.random((3, cfg.num_segments, cfg.beat_slots)) < 0.3).astype(np.float32),
        ]
        if cfg.rhythm_branch:
            inputs.append(rng.random((3, cfg.rhythm_channels, cfg.rhythm_bins)).astype(np.float32))
        encode = net.encode_music if modality == "music" else net.encode_dance
        with torch.no_grad():
            want = encode(*(torch.from_numpy(a) for a in inputs))
        got = numpy_net.encode(modality, *inputs)
        for key in ("fuse", "beat"):
            assert got[key].dtype == np.float32 and got[key].shape == (3, cfg.output_dim)
            np.testing.assert_allclose(got[key], want[key].numpy(), rtol=1e-4, atol=2e-5, err_msg=f"{modality} {key}")


def test_query_encoder_is_numpy_on_the_cpu_and_torch_elsewhere_with_the_same_embeddings(tmp_path):
    """A library opened on the CPU embeds queries in numpy; on another device through TorchEncoder (checked here with
    a CPU-loaded net, as no GPU is present), and both give the same embeddings."""
    torch.manual_seed(0)
    net = BeatBlender(BlenderConfig(**SMALL, **CONFIGS["default recipe"])).eval()
    path = save_checkpoint(tmp_path / "ckpt", model=net, config={})
    assert isinstance(query_encoder(path, device="cpu"), NumpyBlender)
    rng = np.random.default_rng(2)
    inputs = [
        rng.normal(size=(2, 5, 9)).astype(np.float32),
        (rng.random((2, 5, 4)) < 0.3).astype(np.float32),
        rng.random((2, net.config.rhythm_channels, net.config.rhythm_bins)).astype(np.float32),
    ]
    via_torch = TorchEncoder(load_checkpoint(path)[0]).encode("dance", *inputs)
    via_numpy = NumpyBlender.load(path).encode("dance", *inputs)
    for key in ("fuse", "beat"):
        np.testing.assert_allclose(via_numpy[key], via_torch[key], rtol=1e-4, atol=2e-5)


def test_wrong_shapes_and_a_missing_rhythm_array_are_clear_errors(tmp_path):
    net = BeatBlender(BlenderConfig(**SMALL, **CONFIGS["default recipe"])).eval()
    numpy_net = NumpyBlender.load(save_checkpoint(tmp_path / "ckpt", model=net, config={}))
    features, beats = np.zeros((1, 5, 12), np.float32), np.zeros((1, 5, 4), np.float32)
    with pytest.raises(ParameterError, match=r"music features have shape \(1, 5, 9\); expected \(batch, 5, 12\)"):
        numpy_net.encode("music", features[:, :, :9], beats, None)
    with pytest.raises(ParameterError, match="rhythm branch"):
        numpy_net.encode("music", features, beats, None)
    with pytest.raises(ParameterError, match="modality"):
        numpy_net.encode("video", features, beats, None)  # type: ignore[arg-type]
