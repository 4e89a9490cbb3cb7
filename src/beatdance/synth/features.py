"""A synthetic feature dataset in the official BeatDance layout, for demos and tests.

Music and dance share structure the way real pairs do:

* **style**: each pair draws one of ``num_styles`` styles; a style is a fixed random vector in a latent
  space of ``latent_dim`` dimensions, added to both modalities;
* **temporal structure**: a smooth random trajectory z(t) in the same latent space (an "energy and
  mood" curve over the 10-s clip) drives both the music and the dance features;
* **beats**: a tempo (70-180 BPM) and phase give the music beats; the dance beats are the same beats,
  each moved by up to ``dance_beat_jitter_frames`` frames, some dropped and a few spurious ones added.
  Beat frames also add a pulse to the per-frame features of each modality.

Each modality sees the latents through its own fixed random linear map (music: ``music_dim``,
dance: ``dance_dim``) plus Gaussian noise, so a model has to learn two different inverse maps to
match them; chance R@1 is 1/N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError


@dataclass
class SynthFeatureConfig:
    """Sizes and difficulty of the synthetic dataset (frame rates are per 10-s clip)."""

    num_train: int = 800
    num_val: int = 100
    num_test: int = 200
    music_dim: int = 128
    dance_dim: int = 64
    music_frames: int = 75
    dance_frames: int = 50
    beat_fps: float = 10.0
    clip_duration_s: float = 10.0
    latent_dim: int = 16
    num_styles: int = 8
    music_noise: float = 1.0
    dance_noise: float = 1.5
    dance_beat_jitter_frames: int = 1
    dance_beat_drop: float = 0.15
    dance_beat_extra: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.num_train, self.num_val, self.num_test) < 2:
            raise ParameterError("num_train, num_val and num_test must each be at least 2 clips.")
        if self.music_frames < 10 or self.dance_frames < 10:
            raise ParameterError("music_frames and dance_frames must be at least 10 (one per segment).")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SynthSplit:
    """Per-frame arrays of one split: music (N, Tm, Dm), dance (N, Td, Dd), beat grids (N, F)."""

    ids: list[str]
    music: np.ndarray
    dance: np.ndarray
    music_beat: np.ndarray
    dance_beat: np.ndarray
    tempo_bpm: np.ndarray
    style: np.ndarray


def _smooth_trajectory(rng: np.random.Generator, n: int, frames: int, dim: int) -> np.ndarray:
    """Smooth random curves (n, frames, dim): a sum of a few low-frequency sinusoids per dimension."""
    t = np.linspace(0.0, 1.0, frames)[None, :, None, None]
    freq = rng.uniform(0.3, 2.5, size=(n, 1, dim, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, dim, 3))
    amp = rng.normal(0, 1, size=(n, 1, dim, 3)) / np.sqrt(3)
    return (amp * np.sin(2 * np.pi * freq * t + phase)).sum(-1)


def generate_split(
    cfg: SynthFeatureConfig, *, n: int, prefix: str, rng: np.random.Generator, maps: dict[str, np.ndarray]
) -> SynthSplit:
    """Generate ``n`` aligned clips with the dataset-wide latent maps ``maps``."""
    grid_len = int(round(cfg.clip_duration_s * cfg.beat_fps))
    style = rng.integers(0, cfg.num_styles, size=n)
    tempo = rng.uniform(70.0, 180.0, size=n)
    latent = _smooth_trajectory(rng, n, grid_len, cfg.latent_dim) + maps["styles"][style][:, None, :]

    music_beat = np.zeros((n, grid_len), np.float32)
    dance_beat = np.zeros((n, grid_len), np.float32)
    for i in range(n):
        period = 60.0 / tempo[i]
        times = np.arange(rng.uniform(0, period), cfg.clip_duration_s, period)
        frames = np.round(times * cfg.beat_fps).astype(int)
        frames = frames[frames < grid_len]
        music_beat[i, frames] = 1.0
        keep = frames[rng.random(frames.size) >= cfg.dance_beat_drop]
        moved = keep + rng.integers(-cfg.dance_beat_jitter_frames, cfg.dance_beat_jitter_frames + 1, keep.size)
        extra = np.flatnonzero(rng.random(grid_len) < cfg.dance_beat_extra)
        dance_idx = np.clip(np.concatenate([moved, extra]), 0, grid_len - 1)
        dance_beat[i, dance_idx] = 1.0

    def render(frames: int, dim: int, key: str, beats: np.ndarray, noise: float) -> np.ndarray:
        src = np.linspace(0, grid_len - 1, frames)
        lat = np.stack(
            [
                np.stack([np.interp(src, np.arange(grid_len), latent[i, :, k]) for k in range(cfg.latent_dim)], -1)
                for i in range(n)
            ]
        )
        pulse = np.stack([np.interp(src, np.arange(grid_len), beats[i]) for i in range(n)])[..., None]
        x = lat @ maps[key] + pulse * maps[key + "_pulse"] + rng.normal(0, noise, size=(n, frames, dim))
        return x.astype(np.float32)

    music = render(cfg.music_frames, cfg.music_dim, "music", music_beat, cfg.music_noise)
    dance = render(cfg.dance_frames, cfg.dance_dim, "dance", dance_beat, cfg.dance_noise)
    ids = [f"{prefix}_{i:05d}" for i in range(n)]
    return SynthSplit(
        ids=ids, music=music, dance=dance, music_beat=music_beat, dance_beat=dance_beat, tempo_bpm=tempo, style=style
    )


def generate_synthetic_features(cfg: SynthFeatureConfig) -> dict[str, SynthSplit]:
    """The train, val and test splits of a synthetic dataset, deterministic in ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    maps = {
        "styles": rng.normal(0, 1.5, size=(cfg.num_styles, cfg.latent_dim)),
        "music": rng.normal(0, 1 / np.sqrt(cfg.latent_dim), size=(cfg.latent_dim, cfg.music_dim)) * 2,
        "dance": rng.normal(0, 1 / np.sqrt(cfg.latent_dim), size=(cfg.latent_dim, cfg.dance_dim)) * 2,
        "music_pulse": rng.normal(0, 1, size=cfg.music_dim),
        "dance_pulse": rng.normal(0, 1, size=cfg.dance_dim),
    }
    return {
        split: generate_split(cfg, n=n, prefix=split, rng=rng, maps=maps)
        for split, n in (("train", cfg.num_train), ("val", cfg.num_val), ("test", cfg.num_test))
    }
