"""The blender against an independent reference written from SPEC §2, and batch (in)dependence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from beatdance.errors import CheckpointError, ParameterError
from beatdance.model import BeatBlender, BlenderConfig

SMALL = dict(
    music_dim=12,
    dance_dim=9,
    num_segments=10,
    beat_slots=10,
    embed_dim=16,
    num_layers=2,
    num_heads=4,
    ff_dim=24,
    beat_hidden=8,
)


def _inputs(batch: int, cfg: BlenderConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "music": torch.randn(batch, cfg.num_segments, cfg.music_dim, generator=g),
        "dance": torch.randn(batch, cfg.num_segments, cfg.dance_dim, generator=g),
        "music_beat": (torch.rand(batch, cfg.num_segments, cfg.beat_slots, generator=g) > 0.7).float(),
        "dance_beat": (torch.rand(batch, cfg.num_segments, cfg.beat_slots, generator=g) > 0.7).float(),
    }


def _mha(q, k, v, w_in, b_in, w_out, b_out, heads):
    """Multi-head attention over axis 0 of (L, N, E) inputs, from the textbook formula."""
    e = q.shape[-1]
    wq, wk, wv = w_in.split(e)
    bq, bk, bv = b_in.split(e)

    def split(x):  # (L, N, E) -> (N, heads, L, E/heads)
        return x.reshape(x.shape[0], x.shape[1], heads, e // heads).permute(1, 2, 0, 3)

    qh, kh, vh = split(q @ wq.T + bq), split(k @ wk.T + bk), split(v @ wv.T + bv)
    att = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(e // heads), dim=-1)
    out = (att @ vh).permute(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], e)
    return out @ w_out.T + b_out


def _encoder_ref(x, sd, prefix, layers, heads):
    """Post-LN TransformerEncoder with ReLU FFN, attention over axis 0 (PyTorch's batch_first=False)."""
    for i in range(layers):
        p = f"{prefix}.layers.{i}."
        a = _mha(
            x,
            x,
            x,
            sd[p + "self_attn.in_proj_weight"],
            sd[p + "self_attn.in_proj_bias"],
            sd[p + "self_attn.out_proj.weight"],
            sd[p + "self_attn.out_proj.bias"],
            heads,
        )
        x = F.layer_norm(x + a, x.shape[-1:], sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-5)
        h = (
            F.relu(x @ sd[p + "linear1.weight"].T + sd[p + "linear1.bias"]) @ sd[p + "linear2.weight"].T
            + sd[p + "linear2.bias"]
        )
        x = F.layer_norm(x + h, x.shape[-1:], sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-5)
    return x


def _official_reference(sd, inputs, cfg: BlenderConfig):
    """SPEC §2.1-2.3 written out: (B,S,d) tensors are fed as (seq=B, batch=S) to the encoders."""
    out = {}
    for mod, feat, beat in (("music", "music", "music_beat"), ("dance", "dance", "dance_beat")):
        p = f"{mod}."
        x = inputs[feat] @ sd[p + "feature_linear.weight"].T + sd[p + "feature_linear.bias"]
        b = inputs[beat] @ sd[p + "beat_linear.0.weight"].T + sd[p + "beat_linear.0.bias"]
        b = b @ sd[p + "beat_linear.1.weight"].T + sd[p + "beat_linear.1.bias"]
        x = _encoder_ref(x, sd, p + "feature_encoder", cfg.num_layers, cfg.num_heads)
        b = _encoder_ref(b, sd, p + "beat_encoder", cfg.num_layers, cfg.num_heads)
        fused = torch.cat([x + b, x * b], -1) @ sd[p + "fuse.weight"].T + sd[p + "fuse.bias"]
        # cross-attention is batch_first: attention over the S segments of each clip
        c = _mha(
            b.transpose(0, 1),
            x.transpose(0, 1),
            x.transpose(0, 1),
            sd[p + "cross_attention.in_proj_weight"],
            sd[p + "cross_attention.in_proj_bias"],
            sd[p + "cross_attention.out_proj.weight"],
            sd[p + "cross_attention.out_proj.bias"],
            cfg.num_heads,
        ).transpose(0, 1)
        n = inputs[feat].shape[0]
        out[f"{mod}_fuse"] = fused.reshape(n, -1)
        out[f"{mod}_beat"] = c.reshape(n, -1)
    return out


def test_official_matches_independent_reference():
    torch.manual_seed(0)
    cfg = BlenderConfig(variant="official", **SMALL)
    model = BeatBlender(cfg).eval()
    inputs = _inputs(7, cfg)
    with torch.no_grad():
        got = model(**inputs)
        ref = _official_reference(model.state_dict(), inputs, cfg)
    for key in ref:
        assert got[key].shape == (7, cfg.num_segments * cfg.embed_dim)
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=1e-5)


def test_official_parameter_count_matches_spec():
    assert sum(p.numel() for p in BeatBlender(BlenderConfig(variant="official")).parameters()) == 32_713_600


def test_official_embedding_depends_on_batch_companions():
    torch.manual_seed(0)
    cfg = BlenderConfig(variant="official", **SMALL)
    model = BeatBlender(cfg).eval()
    a, b = _inputs(6, cfg, seed=1), _inputs(6, cfg, seed=2)
    mixed = {k: torch.cat([a[k][:3], b[k][3:]]) for k in a}
    with torch.no_grad():
        ea, em = model(**a), model(**mixed)
    assert not torch.allclose(ea["music_fuse"][:3], em["music_fuse"][:3], atol=1e-4)


def test_temporal_embedding_does_not_depend_on_batch():
    torch.manual_seed(0)
    cfg = BlenderConfig(variant="temporal", **SMALL)
    model = BeatBlender(cfg).eval()
    a, b = _inputs(6, cfg, seed=1), _inputs(6, cfg, seed=2)
    mixed = {k: torch.cat([a[k][:3], b[k][3:]]) for k in a}
    alone = {k: a[k][:1] for k in a}
    with torch.no_grad():
        ea, em, e1 = model(**a), model(**mixed), model(**alone)
    for key in ("music_fuse", "dance_fuse", "music_beat", "dance_beat"):
        torch.testing.assert_close(ea[key][:3], em[key][:3], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ea[key][:1], e1[key], atol=1e-5, rtol=1e-5)


def test_temporal_embedding_depends_on_segment_order():
    torch.manual_seed(0)
    cfg = BlenderConfig(variant="temporal", **SMALL)
    model = BeatBlender(cfg).eval()
    a = _inputs(2, cfg)
    rev = {k: v.flip(1) for k, v in a.items()}
    with torch.no_grad():
        x = model.encode_music(a["music"], a["music_beat"])["fuse"].reshape(2, 10, -1)
        y = model.encode_music(rev["music"], rev["music_beat"])["fuse"].reshape(2, 10, -1)
    assert not torch.allclose(x, y.flip(1), atol=1e-4)


def test_wrong_shapes_and_configs_raise_clear_errors():
    cfg = BlenderConfig(**SMALL)
    model = BeatBlender(cfg)
    with pytest.raises(ParameterError, match=r"expected \(batch, 10, 12\)"):
        model.encode_music(torch.randn(2, 10, 7), torch.zeros(2, 10, 10))
    with pytest.raises(ParameterError, match="num_heads"):
        BlenderConfig(embed_dim=10, num_heads=4)
    with pytest.raises(CheckpointError, match="unknown keys"):
        BlenderConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert BlenderConfig.from_dict(cfg.to_dict()) == cfg


def test_ablation_switches_no_beat_branch_and_mlp_encoders():
    """beat_branch=False ignores the beats entirely; encoder='mlp' has no attention, so no clip sees another."""
    torch.manual_seed(0)
    no_beat = BeatBlender(BlenderConfig(beat_branch=False, **SMALL)).eval()
    x = _inputs(5, no_beat.config)
    out = no_beat(**x)
    other_beats = {**x, "music_beat": 1 - x["music_beat"], "dance_beat": 1 - x["dance_beat"]}
    assert torch.equal(out["music_fuse"], no_beat(**other_beats)["music_fuse"])
    assert not any("beat" in name for name, _ in no_beat.named_parameters())
    assert torch.count_nonzero(out["music_beat"]) == 0

    mlp = BeatBlender(BlenderConfig(encoder="mlp", variant="official", **SMALL)).eval()
    assert not any("attn" in name for name, _ in mlp.music.feature_encoder.named_parameters())
    x = _inputs(6, mlp.config)
    full = mlp(**x)["music_fuse"]
    alone = mlp(**{k: v[:2] for k, v in x.items()})["music_fuse"]
    torch.testing.assert_close(full[:2], alone)
    with pytest.raises(ParameterError, match="encoder"):
        BlenderConfig(encoder="lstm", **SMALL)  # type: ignore[arg-type]


def test_mean_pool_averages_the_segment_vectors_of_the_flattened_embedding():
    """pool='mean' gives the mean over segments of what pool='flatten' joins, with the same weights."""
    torch.manual_seed(0)
    flat = BeatBlender(BlenderConfig(positional="sinusoidal", **SMALL)).eval()
    mean = BeatBlender(BlenderConfig(positional="sinusoidal", pool="mean", **SMALL)).eval()
    mean.load_state_dict(flat.state_dict())
    x = _inputs(3, flat.config)
    a, b = flat(**x), mean(**x)
    assert mean.config.output_dim == SMALL["embed_dim"] and flat.config.output_dim == 10 * SMALL["embed_dim"]
    for key in ("music_fuse", "music_beat", "dance_fuse", "dance_beat"):
        assert b[key].shape == (3, SMALL["embed_dim"])
        torch.testing.assert_close(b[key], a[key].reshape(3, 10, -1).mean(dim=1))
    with pytest.raises(ParameterError, match="pool"):
        BlenderConfig(pool="max", **SMALL)  # type: ignore[arg-type]
