"""The metre prior: which tempo ratio and which metre a song and a dance share, counted on the training pairs.

A learned embedding of a 10-s window does not settle the style of a pair: rumba songs go to waltz dances.
Two track-level facts do. A song's beats per bar (madmom's downbeat network, ``MusicBeats.beats_per_bar``:
3 for a waltz, 2 or 4 otherwise) and how a dance moves against its own dominant tempo (a waltz dance's
track tempogram at 2 x and 1/2 x that tempo differs from a rumba's). The prior turns them into a score,
with weights fitted on the training pairs and nothing else:

* tempo agreement ``H``: how often each music-to-dance tempo ratio in ``ratios`` occurs among the training
  pairs *of each music metre* (a waltz danced once a bar is 3; a rumba 2 or 4), and a Gaussian of width
  ``sigma_octaves`` of log2(music tempo / dance tempo) around each ratio, weighted by those counts;
* metre agreement ``A``: the probability that the dance is danced to triple metre (a logistic regression on
  its track tempogram at ``probes`` x its dominant tempo, fitted on the training dances with their partner
  song's metre as the label) if the song is in triple metre, one minus it if in duple metre, 0 if unknown.

Both are dot products of per-side rows (``H`` as a Fourier series in log2 tempo), so the prior joins a
model's fused embedding as extra blocks (:meth:`MetrePrior.join`) and every scorer, querybank and index
ranks by ``cosine + tempo_weight x H + metre_weight x A`` (up to one constant factor) unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..beats.rhythm import RhythmConfig, peak_tempo_bpm
from ..errors import CheckpointError, DataError, ParameterError
from ..features.featureset import FeatureSet

METRE_CLASSES = ("triple", "duple", "unknown")
_PERIOD_OCTAVES = 8.0  # H is periodic in log2 tempo with this period, wider than any tempo range
_RATIO_TOLERANCE_OCTAVES = 0.1  # a training pair counts for the nearest ratio when this close to it
MIN_SIGMA_OCTAVES = 0.01  # narrowest tempo kernel: 382 harmonics, 764 dimensions
MAX_RATIOS = 16  # most tempo ratios, and most dance probes, a prior may have


@dataclass(frozen=True)
class PriorConfig:
    """How the prior is fitted and weighted; saved with the checkpoint that carries it."""

    tempo_weight: float = 1.0
    metre_weight: float = 1.0
    sigma_octaves: float = 0.07
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)
    probes: tuple[float, ...] = (0.5, 2.0)
    ridge: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tempo_weight", "metre_weight", "ridge"):
            if not getattr(self, name) >= 0:
                raise ParameterError(f"PriorConfig.{name}={getattr(self, name)} must be >= 0.")
        # The tempo kernel has 3 x 8 / (2 pi sigma) harmonics: a narrow sigma read from a checkpoint must not
        # make every embedding gigabytes long.
        if not MIN_SIGMA_OCTAVES <= self.sigma_octaves <= 1.0:
            raise ParameterError(
                f"PriorConfig.sigma_octaves={self.sigma_octaves} must be in [{MIN_SIGMA_OCTAVES}, 1] (e.g. 0.07)."
            )
        for name in ("ratios", "probes"):
            values = getattr(self, name)
            if not 0 < len(values) <= MAX_RATIOS or min(values) <= 0:
                raise ParameterError(
                    f"PriorConfig.{name}={values}: expected 1 to {MAX_RATIOS} positive values, e.g. (0.5, 2.0)."
                )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": list(self.ratios), "probes": list(self.probes)}  # as JSON reads back


def metre_class(beats_per_bar: float) -> str:
    """``triple`` (3 beats per bar), ``duple`` (2 or 4) or ``unknown`` (0: no downbeats, or anything else)."""
    return {3: "triple", 2: "duple", 4: "duple"}.get(int(beats_per_bar), "unknown")


def track_tempos_bpm(rhythm: np.ndarray, *, config: RhythmConfig) -> np.ndarray:
    """(N,) track tempo of each clip from channel 0 of its (N, C, bins) rhythm arrays; NaN where none was found."""
    bpm = np.array([peak_tempo_bpm(r[0], config=config) for r in rhythm], dtype=np.float64)
    return np.where(bpm > 0, bpm, np.nan)


def tempo_kernel_rows(
    tempo_bpm: np.ndarray, *, sigma_octaves: float, ratios: tuple[float, ...], weights: np.ndarray | None
) -> np.ndarray:
    """Rows whose music-dance dot product is a tempo-agreement kernel: the sum over ``ratios`` (music tempo /
    dance tempo) of ``weights`` x a Gaussian of width ``sigma_octaves`` of log2(music / dance tempo) - log2 ratio
    (each peaking at 1), made periodic over 8 octaves, less its mean. Written as a Fourier series: a music row
    (``weights`` given) is coefficients x e^{i w log2 tempo}, a dance row (``weights`` None) e^{i w log2 tempo},
    both as [Re, Im]. A NaN or zero tempo (none found) gives a zero row."""
    x = np.log2(np.where(np.asarray(tempo_bpm, dtype=np.float64) > 0, tempo_bpm, np.nan))
    count = int(np.ceil(3.0 * _PERIOD_OCTAVES / (2.0 * np.pi * sigma_octaves)))
    w = 2.0 * np.pi * np.arange(1, count + 1) / _PERIOD_OCTAVES
    phase = np.exp(1j * w[None, :] * np.nan_to_num(x)[:, None])
    if weights is not None:
        mix = (np.asarray(weights, np.float64)[None, :] * np.exp(-1j * w[:, None] * np.log2(ratios)[None, :])).sum(1)
        scale = 2.0 * np.sqrt(2.0 * np.pi) * sigma_octaves / _PERIOD_OCTAVES
        phase = phase * (scale * np.exp(-0.5 * (w * sigma_octaves) ** 2) * mix)[None, :]
    rows = np.concatenate([phase.real, phase.imag], axis=1)  # Re(z conj(y)) = Re z Re y + Im z Im y
    rows[np.isnan(x)] = 0.0
    return rows


def _probe_values(
    rhythm: np.ndarray, *, tempo: np.ndarray, probes: tuple[float, ...], config: RhythmConfig
) -> np.ndarray:
    """(N, len(probes)) track tempogram (channel 1) at each probe x the dominant ``tempo`` (:func:`track_tempos_bpm`
    of ``rhythm``), linear in bins, 0 off the axis."""
    pos = np.log2(np.outer(np.nan_to_num(tempo, nan=config.min_bpm), probes) / config.min_bpm) * config.bins_per_octave
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    out = np.zeros(pos.shape)
    n = rhythm.shape[-1]
    for idx, w in ((lo, 1.0 - frac), (lo + 1, frac)):
        ok = (idx >= 0) & (idx < n)
        vals = np.take_along_axis(rhythm[:, 1], np.clip(idx, 0, n - 1), axis=1)
        out += np.where(ok, vals * w, 0.0)
    out[np.isnan(tempo)] = 0.0
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, *, ridge: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (bias not penalised)."""
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], ridge)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


@dataclass
class MetrePrior:
    """A fitted prior: ratio weights per music metre class and the dance's metre classifier."""

    config: PriorConfig
    rhythm: RhythmConfig
    ratio_weights: dict[str, list[float]]
    dance_coef: list[float]
    dance_bias: float
    fitted_on: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "rhythm": self.rhythm.to_dict(),
            "ratio_weights": self.ratio_weights,
            "dance_coef": self.dance_coef,
            "dance_bias": self.dance_bias,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "checkpoint") -> MetrePrior:
        try:
            cfg = d["config"]
            prior = cls(
                config=PriorConfig(**{**cfg, "ratios": tuple(cfg["ratios"]), "probes": tuple(cfg["probes"])}),
                rhythm=RhythmConfig(**d["rhythm"]),
                ratio_weights={k: [float(v) for v in d["ratio_weights"][k]] for k in METRE_CLASSES},
                dance_coef=[float(v) for v in d["dance_coef"]],
                dance_bias=float(d["dance_bias"]),
                fitted_on=dict(d.get("fitted_on", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{source}: the metre prior is incomplete or invalid ({exc}); retrain with this beatdance version."
            ) from exc
        sizes = {len(w) for w in prior.ratio_weights.values()} | {len(prior.config.ratios)}
        if len(sizes) != 1 or len(prior.dance_coef) != len(prior.config.probes):
            raise CheckpointError(
                f"{source}: the metre prior's weights do not fit its config ({len(prior.config.ratios)} ratios, "
                f"{len(prior.config.probes)} probes); the file was edited or damaged. Retrain."
            )
        return prior

    # -- per-side facts ------------------------------------------------------------------------------

    def dance_triple_probability(self, dance_rhythm: np.ndarray) -> np.ndarray:
        """(N,) probability that each dance is danced to a song in triple metre."""
        return self._triple_probability(dance_rhythm, track_tempos_bpm(dance_rhythm, config=self.rhythm))

    def _triple_probability(self, dance_rhythm: np.ndarray, tempo: np.ndarray) -> np.ndarray:
        x = _probe_values(dance_rhythm, tempo=tempo, probes=self.config.probes, config=self.rhythm)
        return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.dance_coef) + self.dance_bias)))

    def _kernel_rows(self, tempo_bpm: np.ndarray, cls: str | None) -> np.ndarray:
        weights = None if cls is None else np.asarray(self.ratio_weights[cls])
        cfg = self.config
        return tempo_kernel_rows(tempo_bpm, sigma_octaves=cfg.sigma_octaves, ratios=cfg.ratios, weights=weights)

    @cached_property
    def _balance(self) -> float:
        """sqrt(largest dance row norm / largest music row norm) of H (neither depends on the tempo): the music
        side is multiplied by it and the dance side divided, so both have the same largest norm and the joined
        vectors need the least shrinking to unit length."""
        one = np.array([100.0])
        music = max(float(np.linalg.norm(self._kernel_rows(one, c))) for c in METRE_CLASSES)
        return float(np.sqrt(np.linalg.norm(self._kernel_rows(one, None)) / music))

    def _tempo_rows(self, tempo_bpm: np.ndarray, cls: str | None) -> np.ndarray:
        """H's rows: music of metre class ``cls`` (its ratio counts as weights), or dance (``cls`` None)."""
        rows, k = self._kernel_rows(tempo_bpm, cls), self._balance
        return rows / k if cls is None else rows * k

    def music_rows(self, *, music_rhythm: np.ndarray, beats_per_bar: np.ndarray) -> np.ndarray:
        """(N, dim) rows of the music side: sqrt(tempo_weight) x H block, sqrt(metre_weight) x A block."""
        tempo = track_tempos_bpm(music_rhythm, config=self.rhythm)
        classes = [metre_class(b) for b in np.asarray(beats_per_bar).reshape(-1)]
        if len(classes) != len(tempo):
            raise DataError(f"{len(classes)} beats-per-bar values for {len(tempo)} music rhythm arrays.")
        h = np.zeros((len(tempo), self._tempo_dim))
        for cls in METRE_CLASSES:
            rows = np.array([c == cls for c in classes])
            if rows.any():
                h[rows] = self._tempo_rows(tempo[rows], cls)
        a = np.array([[c == "triple", c == "duple"] for c in classes], dtype=np.float64).reshape(-1, 2)
        return self._blocks(h, a)

    def dance_rows(self, *, dance_rhythm: np.ndarray) -> np.ndarray:
        """(N, dim) rows of the dance side, the partners of :meth:`music_rows`."""
        tempo = track_tempos_bpm(dance_rhythm, config=self.rhythm)
        p = self._triple_probability(dance_rhythm, tempo)
        return self._blocks(self._tempo_rows(tempo, None), np.stack([p, 1.0 - p], axis=1))

    @cached_property
    def _tempo_dim(self) -> int:
        return self._tempo_rows(np.array([100.0]), None).shape[1]

    def _blocks(self, h: np.ndarray, a: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [np.sqrt(self.config.tempo_weight) * h, np.sqrt(self.config.metre_weight) * a], axis=1
        ).astype(np.float32)

    @cached_property
    def _bound(self) -> float:
        """The largest squared norm a row of either side can have (a tempo row's does not depend on the tempo)."""
        one = np.array([100.0])
        tempo = max(float((self._tempo_rows(one, c) ** 2).sum()) for c in (*METRE_CLASSES, None))
        return self.config.tempo_weight * tempo + self.config.metre_weight

    @property
    def extra_dim(self) -> int:
        """How many dimensions :meth:`embed` adds to a fused embedding."""
        return self._tempo_dim + 2 + 2

    def embed(
        self, modality: str, fuse: np.ndarray, *, rhythm: np.ndarray | None, beats_per_bar: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, E + extra_dim) unit rows: L2-normalised ``fuse`` joined with the prior rows of ``modality``,
        from the clips' (B, C, bins) ``rhythm`` arrays and (music) their songs' ``beats_per_bar`` (None: unknown)."""
        if rhythm is None:
            raise DataError(
                f"the model carries a metre prior, which needs the {modality} clips' rhythm arrays; prepare the "
                "data with this beatdance version (it writes them), or use a model trained without the prior."
            )
        bins = (rhythm.shape[-1], self.rhythm.num_bins)
        if rhythm.ndim != 3 or bins[0] != bins[1]:
            raise DataError(
                f"{modality} rhythm arrays have shape {rhythm.shape}; expected (batch, channels, {bins[1]})."
            )
        x = np.asarray(fuse, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if modality == "music":
            bpb = np.zeros(len(x)) if beats_per_bar is None else np.asarray(beats_per_bar).reshape(-1)
            return self.join(x, self.music_rows(music_rhythm=rhythm, beats_per_bar=bpb), music=True)
        return self.join(x, self.dance_rows(dance_rhythm=rhythm), music=False)

    def join(self, fuse: np.ndarray, rows: np.ndarray, *, music: bool) -> np.ndarray:
        """Unit rows [fuse, prior rows, pad] / norm whose music-dance dot products are proportional to
        cosine(fuse) + tempo_weight x H + metre_weight x A. Each side pads in its own last coordinate,
        so pads never meet."""
        if len(fuse) != len(rows):
            raise DataError(f"{len(fuse)} fused embeddings for {len(rows)} prior rows.")
        norm2 = 1.0 + self._bound
        body = np.concatenate([fuse.astype(np.float64), rows.astype(np.float64)], axis=1) / np.sqrt(norm2)
        pad = np.sqrt(np.clip(1.0 - (body**2).sum(axis=1), 0.0, None))[:, None]
        zero = np.zeros_like(pad)
        return np.concatenate([body, pad, zero] if music else [body, zero, pad], axis=1).astype(np.float32)


def ratio_counts(octaves: np.ndarray, *, ratios: tuple[float, ...]) -> np.ndarray:
    """How often each of ``ratios`` is the nearest one (within 0.1 octave) among log2 tempo ratios
    ``octaves``, add-one smoothed and summing to 1."""
    x = np.asarray(octaves, dtype=np.float64)
    x = x[np.isfinite(x)]
    distance = np.abs(x[:, None] - np.log2(np.array(ratios))[None, :])
    near = distance.min(axis=1) <= _RATIO_TOLERANCE_OCTAVES
    counts = np.bincount(distance[near].argmin(axis=1), minlength=len(ratios)).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + len(ratios))


def fit_prior_on(features: FeatureSet, *, config: PriorConfig | None = None) -> MetrePrior:
    """:func:`fit_metre_prior` on the training pairs of ``features`` (rhythm axis from the store they came from)."""
    if not features.has_rhythm:
        raise DataError(
            "the metre prior is fitted on the training clips' rhythm arrays, and these features have none; "
            "prepare the store with this beatdance version, or train without the prior (--no-metre-prior)."
        )
    assert features.music_rhythm is not None and features.dance_rhythm is not None
    stored = features.info.get("rhythm")
    rhythm = RhythmConfig(**stored) if stored else RhythmConfig()
    if rhythm.num_bins != features.music_rhythm.shape[-1]:
        raise DataError(
            f"the rhythm arrays have {features.music_rhythm.shape[-1]} bins but the rhythm axis {rhythm.to_dict()} "
            f"has {rhythm.num_bins}; the store's config does not match its clips. Re-run `beatdance prepare`."
        )
    return fit_metre_prior(
        music_rhythm=features.music_rhythm,
        dance_rhythm=features.dance_rhythm,
        beats_per_bar=features.beats_per_bar(),
        rhythm=rhythm,
        config=config,
    )


def fit_metre_prior(
    *,
    music_rhythm: np.ndarray,
    dance_rhythm: np.ndarray,
    beats_per_bar: np.ndarray,
    rhythm: RhythmConfig,
    config: PriorConfig | None = None,
) -> MetrePrior:
    """Fit the prior on training pairs (item i's music is the partner of dance i): ratio counts per music
    metre class, and the dance metre classifier on the pairs whose song's metre is known."""
    cfg = config or PriorConfig()
    classes = np.array([metre_class(b) for b in np.asarray(beats_per_bar).reshape(-1)])
    if len(classes) != len(music_rhythm) or len(music_rhythm) != len(dance_rhythm):
        raise DataError(
            f"fit_metre_prior: {len(music_rhythm)} music and {len(dance_rhythm)} dance rhythm arrays "
            f"with {len(classes)} beats-per-bar values; give one of each per training pair."
        )
    dance_tempo = track_tempos_bpm(dance_rhythm, config=rhythm)
    octaves = np.log2(track_tempos_bpm(music_rhythm, config=rhythm) / dance_tempo)
    weights = {
        cls: ratio_counts(octaves if cls == "unknown" else octaves[classes == cls], ratios=cfg.ratios).tolist()
        for cls in METRE_CLASSES
    }
    known = classes != "unknown"
    labels = (classes[known] == "triple").astype(np.float64)
    if labels.size and 0 < labels.sum() < labels.size:
        x = _probe_values(dance_rhythm[known], tempo=dance_tempo[known], probes=cfg.probes, config=rhythm)
        coef, bias = _fit_logistic(x, labels, ridge=cfg.ridge)
    else:  # one metre class only (or none known): the dance side says "as often as in training"
        rate = float((labels.sum() + 1.0) / (labels.size + 2.0))
        coef, bias = np.zeros(len(cfg.probes)), float(np.log(rate / (1.0 - rate)))
    return MetrePrior(
        config=cfg,
        rhythm=rhythm,
        ratio_weights=weights,
        dance_coef=[float(c) for c in coef],
        dance_bias=bias,
        fitted_on={cls: int((classes == cls).sum()) for cls in METRE_CLASSES},
    )
