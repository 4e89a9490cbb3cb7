"""The optional CLIP and MERT encoders, on tiny random models saved to tmp folders (nothing is downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from beatdance.encoders import available_encoders, create_encoder  # noqa: E402
from beatdance.encoders.clip import sample_frame_indices  # noqa: E402
from beatdance.encoders.hf_local import weight_files  # noqa: E402
from beatdance.errors import MediaError, MissingWeightsError, ParameterError  # noqa: E402
from beatdance.media.types import MediaClip  # noqa: E402

VISION = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
    projection_dim=16,
)
AUDIO = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(8, 8),
    conv_stride=(5, 4),
    conv_kernel=(10, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
AUDIO_SR = 24000
AUDIO_FPS = AUDIO_SR / 20  # the product of conv_stride


def _save_clip_processor(path: Path) -> None:
    transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)


def _vision_dir(root: Path, name: str, seed: int) -> Path:
    transformers.set_seed(seed)
    path = root / name
    transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**VISION)).save_pretrained(path)
    _save_clip_processor(path)
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _vision_dir(tmp_path_factory.mktemp("clip"), "tiny-clip", seed=0)


@pytest.fixture(scope="module")
def other_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _vision_dir(tmp_path_factory.mktemp("clip2"), "tiny-clip", seed=1)


@pytest.fixture(scope="module")
def full_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full CLIPModel folder (vision + text), the layout of openai/clip-vit-base-patch32."""
    path = tmp_path_factory.mktemp("clipfull") / "clip-full"
    text = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=99,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    config = transformers.CLIPConfig(
        vision_config=transformers.CLIPVisionConfig(**VISION).to_dict(), text_config=text, projection_dim=16
    )
    transformers.CLIPModel(config).save_pretrained(path)
    _save_clip_processor(path)
    return path


@pytest.fixture(scope="module")
def mert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HuBERT (MERT's architecture) with a 24 kHz feature extractor."""
    transformers.set_seed(0)
    path = tmp_path_factory.mktemp("mert") / "tiny-mert"
    transformers.HubertModel(transformers.HubertConfig(**AUDIO)).save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=AUDIO_SR, feature_size=1, padding_value=0.0, do_normalize=True
    ).save_pretrained(path)
    return path


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 24, 40, 3), dtype=np.uint8)


def _audio(duration_s: float, sr: int) -> np.ndarray:
    t = np.arange(int(duration_s * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def test_both_are_registered_under_their_modality() -> None:
    assert "clip" in available_encoders("dance")
    assert "mert" in available_encoders("music")


def test_sample_frame_indices_take_the_frame_at_each_output_centre() -> None:
    np.testing.assert_array_equal(
        sample_frame_indices(num_frames=30, frames_fps=15.0, fps=5.0), [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]
    )
    np.testing.assert_array_equal(sample_frame_indices(num_frames=3, frames_fps=2.0, fps=4.0), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(sample_frame_indices(num_frames=1, frames_fps=30.0, fps=5.0), [0])


def test_clip_shapes_fps_normalisation_and_determinism(clip_dir: Path) -> None:
    enc = create_encoder("clip", model_dir=clip_dir, fps=5.0, batch_size=4)
    clip = MediaClip(duration_s=2.0, frames=_frames(30), frames_fps=15.0, source="dance.mp4")
    out = enc.encode(clip)
    assert out.shape == (10, 16) and out.dtype == np.float32
    assert (enc.dim, enc.fps) == (16, 5.0)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(enc.encode(clip), out)
    assert np.abs(out[0] - out[1]).max() > 1e-4  # different frames, different embeddings


def test_clip_encodes_the_sampled_frames(clip_dir: Path) -> None:
    enc = create_encoder("clip", model_dir=clip_dir, fps=5.0, batch_size=3)
    frames = _frames(30, seed=1)
    out = enc.encode(MediaClip(duration_s=2.0, frames=frames, frames_fps=15.0))
    picked = frames[sample_frame_indices(num_frames=30, frames_fps=15.0, fps=5.0)]
    direct = enc.encode(MediaClip(duration_s=2.0, frames=picked, frames_fps=5.0))
    np.testing.assert_allclose(out, direct, atol=1e-5)


def test_clip_loads_a_full_clip_model_folder(full_clip_dir: Path) -> None:
    enc = create_encoder("clip", model_dir=full_clip_dir, fps=2.0)
    out = enc.encode(MediaClip(duration_s=1.0, frames=_frames(10), frames_fps=10.0))
    assert out.shape == (2, 16)


def test_clip_config_identifies_the_weights(clip_dir: Path, other_clip_dir: Path) -> None:
    cfg = create_encoder("clip", model_dir=clip_dir).config()
    assert cfg["name"] == "clip" and cfg["model_dir"] == "tiny-clip" and cfg["dim"] == 16 and cfg["fps"] == 5.0
    assert len(cfg["weights_sha256"]) == 64
    assert create_encoder("clip", model_dir=clip_dir).config() == cfg
    assert create_encoder("clip", model_dir=other_clip_dir).config()["weights_sha256"] != cfg["weights_sha256"]


def test_hash_covers_only_the_weights_that_are_loaded(tmp_path: Path, clip_dir: Path) -> None:
    both = tmp_path / "tiny-clip"
    shutil.copytree(clip_dir, both)
    (both / "pytorch_model.bin").write_bytes(b"not loaded: safetensors win")
    assert weight_files(both) == [both / "model.safetensors"]
    assert create_encoder("clip", model_dir=both).config() == create_encoder("clip", model_dir=clip_dir).config()


def test_clip_rejects_clips_without_frames_and_bad_settings(clip_dir: Path) -> None:
    enc = create_encoder("clip", model_dir=clip_dir)
    with pytest.raises(MediaError, match="motion.npz.*needs video frames"):
        enc.encode(MediaClip(duration_s=1.0, source="motion.npz"))
    with pytest.raises(MediaError, match="frames_fps=None; expected the positive frame rate"):
        enc.encode(MediaClip(duration_s=1.0, frames=_frames(4)))
    with pytest.raises(MediaError, match="expected \\(T, H, W, 3\\) uint8"):
        enc.encode(MediaClip(duration_s=1.0, frames=np.zeros((4, 8, 8), np.uint8), frames_fps=4.0))
    with pytest.raises(MediaError, match="0 video frames"):
        enc.encode(MediaClip(duration_s=1.0, frames=_frames(0), frames_fps=4.0))
    with pytest.raises(ParameterError, match="fps=0"):
        create_encoder("clip", model_dir=clip_dir, fps=0)
    with pytest.raises(ParameterError, match="batch_size=0"):
        create_encoder("clip", model_dir=clip_dir, batch_size=0)


@pytest.mark.parametrize("name", ["clip", "mert"])
def test_missing_folder_says_how_to_get_the_weights(tmp_path: Path, name: str) -> None:
    repo = {"clip": "openai/clip-vit-base-patch32", "mert": "m-a-p/MERT-v1-95M"}[name]
    modality = {"clip": "dance", "mert": "music"}[name]
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingWeightsError) as info:
        create_encoder(name, model_dir=missing)
    msg = str(info.value)
    assert str(missing) in msg and "does not exist" in msg
    assert f"huggingface-cli download {repo} --local-dir DIR" in msg
    assert f"--{modality}-encoder {name} --{modality}-encoder-dir DIR" in msg
    with pytest.raises(MissingWeightsError, match="no folder was given"):
        create_encoder(name)


def test_incomplete_folder_lists_the_missing_files(tmp_path: Path, clip_dir: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(clip_dir / "config.json", partial / "config.json")
    with pytest.raises(
        MissingWeightsError, match="lacks preprocessor_config.json, a weights file \\(model.safetensors"
    ):
        create_encoder("clip", model_dir=partial)


def test_weights_of_another_model_are_rejected(tmp_path: Path, clip_dir: Path, mert_dir: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(clip_dir, mixed)
    shutil.copy(mert_dir / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(MissingWeightsError, match="lack \\d+ parameters of CLIPVisionModelWithProjection"):
        create_encoder("clip", model_dir=mixed)


def test_mert_shapes_fps_and_determinism(mert_dir: Path) -> None:
    enc = create_encoder("mert", model_dir=mert_dir)
    assert (enc.dim, enc.fps) == (32, AUDIO_FPS)
    clip = MediaClip(duration_s=0.5, audio=_audio(0.5, AUDIO_SR), sr=AUDIO_SR, source="song.wav")
    out = enc.encode(clip)
    assert out.dtype == np.float32 and out.shape[1] == 32
    assert abs(out.shape[0] - 0.5 * AUDIO_FPS) <= 2
    np.testing.assert_array_equal(enc.encode(clip), out)


def test_mert_resamples_to_the_extractor_rate(mert_dir: Path) -> None:
    enc = create_encoder("mert", model_dir=mert_dir)
    native = enc.encode(MediaClip(duration_s=0.5, audio=_audio(0.5, AUDIO_SR), sr=AUDIO_SR))
    from_16k = enc.encode(MediaClip(duration_s=0.5, audio=_audio(0.5, 16000), sr=16000))
    assert from_16k.shape == native.shape
    corr = np.corrcoef(native[5:-5].ravel(), from_16k[5:-5].ravel())[0, 1]
    assert corr > 0.9


def test_mert_layer_choice(mert_dir: Path) -> None:
    clip = MediaClip(duration_s=0.3, audio=_audio(0.3, AUDIO_SR), sr=AUDIO_SR)
    layers = [create_encoder("mert", model_dir=mert_dir, layer=k).encode(clip) for k in range(3)]
    mean = create_encoder("mert", model_dir=mert_dir, layer="mean").encode(clip)
    np.testing.assert_allclose(mean, np.mean(layers, axis=0), atol=1e-5)
    assert np.abs(layers[0] - layers[2]).max() > 1e-3
    np.testing.assert_array_equal(create_encoder("mert", model_dir=mert_dir, layer=-1).encode(clip), layers[2])
    assert create_encoder("mert", model_dir=mert_dir, layer=-1).config()["layer"] == 2


@pytest.mark.parametrize("layer", [3, -4, "max", True])
def test_mert_rejects_unknown_layers(mert_dir: Path, layer: object) -> None:
    with pytest.raises(ParameterError, match="expected 'mean' or an integer hidden-state index in \\[0, 2\\]"):
        create_encoder("mert", model_dir=mert_dir, layer=layer)


def test_mert_config_records_layer_and_weights(mert_dir: Path) -> None:
    cfg = create_encoder("mert", model_dir=mert_dir, layer=1).config()
    assert cfg == {
        "name": "mert",
        "dim": 32,
        "fps": AUDIO_FPS,
        "model_dir": "tiny-mert",
        "layer": 1,
        "sr": AUDIO_SR,
        "weights_sha256": cfg["weights_sha256"],
    }
    assert len(cfg["weights_sha256"]) == 64


def test_mert_needs_its_remote_code_files(tmp_path: Path, mert_dir: Path) -> None:
    folder = tmp_path / "MERT-v1-95M"
    shutil.copytree(mert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingWeightsError, match="configuration_MERT.py, modeling_MERT.py .*trust_remote_code"):
        create_encoder("mert", model_dir=folder)


def test_mert_rejects_missing_or_too_short_audio(mert_dir: Path) -> None:
    enc = create_encoder("mert", model_dir=mert_dir)
    with pytest.raises(MediaError, match="silent.mp4.*needs audio"):
        enc.encode(MediaClip(duration_s=1.0, source="silent.mp4"))
    with pytest.raises(MediaError, match="too short for MERT"):
        enc.encode(MediaClip(duration_s=0.001, audio=np.zeros(20, np.float32), sr=AUDIO_SR))
    with pytest.raises(MediaError, match="expected mono"):
        enc.encode(MediaClip(duration_s=0.1, audio=np.zeros((2400, 2), np.float32), sr=AUDIO_SR))
