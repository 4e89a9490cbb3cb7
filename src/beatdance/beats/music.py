"""Music beats: regular beats at the metrical level a dancer follows, and librosa's onset envelope.

Music "beats" here are regular beats (as in FACT and the third-party BeatDance re-implementation), not
raw onsets (``onset_detect``, as in CDCD): the beat grid should mark the pulse a dancer follows.
``MusicBeatConfig.tracker`` picks who places them:

* ``"checked"`` (default): madmom-metre's beats, checked against the DP tracker's tempo. When the two tempi
  are at no metrical ratio (1, 2, 3, 4 or 3/2, within 4 %: :func:`metrical_ratio`), madmom's DBN followed a
  pulse that is no level of the song's metre and the DP tracker's beats are kept instead. That happens on
  2 of the 32 Dance-with-Melody songs (madmom-metre 126.7 and 123.1 BPM against 90.8 and 88.7), which made
  madmom-metre alone rank the real pairs worse. On the 60 synthetic songs of ``beatdance synth --num 60
  --seed 0`` it finds the tempo at the annotated level for all 60 (DP tracker: 44) with beat F 1.000 (DP
  0.731); on the human-annotated excerpts it scores madmom's F (0.958 and 0.667; librosa's own defaults
  0.901 and 0.286); on the real pairs of ``make bench`` it ranks as the DP tracker does, paired over 16
  runs (README; ``benchmarks/beat_trackers.py``). About 0.2 s per 10 s of audio on 2 busy cores.
* ``"madmom-metre"``: madmom's joint beat/downbeat networks and its DBN, then a check that the DBN's
  pulse is the beat and not a subdivision of it (:mod:`.madmom_beats`).
* ``"madmom"``: madmom's own offline tracker (beat networks and DBN), kept for comparison.
* ``"librosa"``: the onset envelope and librosa's dynamic-programming tracker (Ellis 2007), what a stored
  config without ``tracker`` used, and the choice for commercial use (no model weights). Its settings
  differ from librosa's in two places, chosen with ``mir_eval.beat.evaluate`` on the two human-annotated
  excerpts in ``shared/data/beat_annotated``: the tempo prior is centred on 100 BPM instead of 120
  (librosa's 120 doubles the 85-BPM GTZAN excerpt), and the hop is 256 samples instead of 512 (beat
  times are quantised to the hop: 11.6 ms instead of 23 ms).

madmom's models are licensed CC BY-NC-SA 4.0 (non-commercial use only); pick ``"librosa"`` otherwise.
The onset envelope is librosa's whichever tracker runs, so the rhythm features built on it do not
depend on the tracker. "librosa" here names the algorithms: the envelope, the tempo estimate and the
tracker run in numpy (:mod:`beatdance.media.spectral`, :mod:`.dp_tracker`) and give librosa 0.11's values
without importing librosa, whose numba kernels cost a fresh process seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..errors import ParameterError
from ..jitcache import ensure_kernels
from ..media import spectral
from . import dp_tracker, madmom_beats

Tracker = Literal["librosa", "madmom", "madmom-metre", "checked"]
TRACKERS: tuple[Tracker, ...] = ("librosa", "madmom", "madmom-metre", "checked")
# Tempo ratios between metrical levels of one song (beat, its halves and doubles, bars of 3, 6/8 vs 3/4),
# and how far a measured ratio may be from one (the tolerance of the beat benchmarks).
METRICAL_RATIOS = {"1": 1.0, "2": 2.0, "3": 3.0, "4": 4.0, "3/2": 1.5}
METRICAL_TOLERANCE = 0.04


@dataclass(frozen=True)
class MusicBeatConfig:
    """Every setting that changes the beats found; ``to_dict()`` is stored with the features.

    Audio at another rate is resampled to ``sr`` first (madmom's networks take the input audio
    resampled to 44.1 kHz instead). The onset envelope is librosa's spectral flux
    of a log-mel spectrogram (``n_fft``, ``hop_length``, ``n_mels``, ``fmax_hz``, ``onset_lag``,
    ``onset_max_size``), aggregated over mel bands by ``onset_aggregate``, optionally computed on the
    percussive part only (``hpss``, separation ``hpss_margin``). The global tempo maximises the
    autocorrelation tempogram (``ac_size_s`` window) times a log-normal prior centred on ``start_bpm``
    with ``prior_bpm_std_octaves`` octaves of spread (None: a flat prior), below ``max_tempo_bpm``.
    The beat tracker then trades onset strength against tempo regularity with ``tightness``;
    ``trim`` drops weak beats at the start and end (every tracker). Those tempo and tracking settings are librosa's:
    ``tracker`` "madmom", "madmom-metre" and "checked" place the beats with madmom's DBN instead, searching
    tempi from ``dbn_min_bpm`` to ``dbn_max_bpm`` (madmom's defaults); "checked" also runs the DP tracker.
    """

    sr: int = 22050
    hop_length: int = 256
    n_fft: int = 2048
    n_mels: int = 128
    fmax_hz: float | None = None
    onset_lag: int = 1
    onset_max_size: int = 1
    onset_aggregate: Literal["mean", "median"] = "mean"
    hpss: bool = False
    hpss_margin: float = 1.0
    start_bpm: float = 100.0
    prior_bpm_std_octaves: float | None = 1.0
    ac_size_s: float = 8.0
    max_tempo_bpm: float = 320.0
    tightness: float = 100.0
    trim: bool = True
    tracker: Tracker = "checked"
    dbn_min_bpm: float = 55.0
    dbn_max_bpm: float = 215.0

    def __post_init__(self) -> None:
        for name in ("sr", "hop_length", "n_fft", "n_mels", "onset_lag", "onset_max_size"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"MusicBeatConfig.{name}={getattr(self, name)} must be a positive integer.")
        for name in ("start_bpm", "ac_size_s", "max_tempo_bpm", "tightness", "hpss_margin"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"MusicBeatConfig.{name}={getattr(self, name)} must be strictly positive.")
        if self.prior_bpm_std_octaves is not None and not self.prior_bpm_std_octaves > 0:
            raise ParameterError(
                f"MusicBeatConfig.prior_bpm_std_octaves={self.prior_bpm_std_octaves} must be > 0, "
                "or None for a flat tempo prior."
            )
        if self.onset_aggregate not in ("mean", "median"):
            raise ParameterError(
                f"MusicBeatConfig.onset_aggregate={self.onset_aggregate!r}; expected 'mean' or 'median'."
            )
        if self.tracker not in TRACKERS:
            raise ParameterError(f"MusicBeatConfig.tracker={self.tracker!r}; expected one of {', '.join(TRACKERS)}.")
        if not 0 < self.dbn_min_bpm < self.dbn_max_bpm:
            raise ParameterError(
                f"MusicBeatConfig.dbn_min_bpm={self.dbn_min_bpm}, dbn_max_bpm={self.dbn_max_bpm}: "
                "need 0 < dbn_min_bpm < dbn_max_bpm, e.g. 55 and 215."
            )

    @property
    def envelope_fps(self) -> float:
        """Frames per second of the onset envelope (one per hop)."""
        return self.sr / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MusicBeatConfig:
        """The config ``to_dict`` gave; one stored before trackers existed (no ``tracker``) was librosa's."""
        return cls(**{"tracker": "librosa", **d})


@dataclass
class MusicBeats:
    """Beat times (float64 seconds, ascending), the global tempo, and the onset envelope they came from.

    ``tempo_bpm`` is the mean tempo of the tracked beats (see ``_refined_tempo_bpm``).
    ``onset_envelope[i]`` (librosa's, whatever the tracker) describes time ``i / envelope_fps``. Silence
    gives no beats and tempo 0. ``level`` says how the madmom-metre tracker chose the metrical level.

    ``bar_contrasts`` is the metre evidence of madmom's downbeat network at these beats (bar length -> how
    strongly its activation groups the beats so: :func:`.madmom_beats.bar_contrasts`); empty for the
    trackers without that network ("librosa", "madmom") or with too few beats.
    """

    times_s: np.ndarray
    tempo_bpm: float
    onset_envelope: np.ndarray
    envelope_fps: float
    level: str = ""
    bar_contrasts: dict[int, float] = field(default_factory=dict)

    @property
    def beats_per_bar(self) -> int:
        """Beats in a bar (2, 3 or 4) as the downbeats show them; 0 when unknown (:func:`.madmom_beats.beats_per_bar`)."""
        return madmom_beats.beats_per_bar(self.bar_contrasts)

    @property
    def bar_tempo_bpm(self) -> float:
        """Bars per minute (``tempo_bpm / beats_per_bar``); 0 when the metre is unknown."""
        return self.tempo_bpm / self.beats_per_bar if self.beats_per_bar else 0.0


def onset_envelope(*, y: np.ndarray, config: MusicBeatConfig) -> np.ndarray:
    """Onset strength (float32, one value per hop) of mono audio ``y`` already at ``config.sr``."""
    if config.hpss:
        ensure_kernels()  # its numba kernels, compiled once and verified, before librosa loads them
        import librosa.effects  # only this option needs librosa (and its numba start-up)

        y = librosa.effects.percussive(y, margin=config.hpss_margin)
    power = spectral.stft_power(y=y, n_fft=config.n_fft, hop_length=config.hop_length)
    mel = spectral.mel_filterbank(sr=config.sr, n_fft=config.n_fft, n_mels=config.n_mels, fmax_hz=config.fmax_hz)
    return spectral.spectral_flux(
        db=spectral.power_to_db(mel @ power),
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        lag=config.onset_lag,
        max_size=config.onset_max_size,
        aggregate=np.median if config.onset_aggregate == "median" else np.mean,
    ).astype(np.float32)


def track_music_beats(*, y: np.ndarray, sr: int, config: MusicBeatConfig = MusicBeatConfig()) -> MusicBeats:
    """Beats of mono audio ``y`` sampled at ``sr`` Hz; silence gives no beats and tempo 0 instead of failing."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"y has shape {y.shape}; expected mono audio (n_samples,). Average the channels first.")
    if sr <= 0:
        raise ParameterError(f"sr={sr} must be a strictly positive sample rate in Hz.")
    if not np.all(np.isfinite(y)):
        raise ParameterError("y contains NaN or infinite samples. Check the decoder output (media.audio.check_audio).")
    original, original_sr = y, sr
    if sr != config.sr:
        y = spectral.resample(y=y, orig_sr=sr, target_sr=config.sr)
    fps = config.envelope_fps
    env = onset_envelope(y=y, config=config) if y.size else np.zeros(0, np.float32)
    if not np.any(env > 0):
        return MusicBeats(times_s=np.zeros(0), tempo_bpm=0.0, onset_envelope=env, envelope_fps=fps)
    if config.tracker == "librosa":
        return _dp_beats(env=env, config=config)
    if original_sr != madmom_beats.SAMPLE_RATE:
        original = spectral.resample(y=original, orig_sr=original_sr, target_sr=madmom_beats.SAMPLE_RATE)
    if config.tracker == "madmom":
        return _madmom_beats(y=original, env=env, tracker=config.tracker, config=config)[0]
    madmom, downbeat_act = _madmom_beats(y=original, env=env, tracker="madmom-metre", config=config)
    beats = (
        madmom if config.tracker == "madmom-metre" else _checked(madmom=madmom, dp=_dp_beats(env=env, config=config))
    )
    assert downbeat_act is not None  # madmom-metre runs the downbeat network
    return replace(beats, bar_contrasts=madmom_beats.bar_contrasts(beats.times_s, downbeat_act=downbeat_act))


def metrical_ratio(faster_bpm: float, slower_bpm: float) -> str | None:
    """The metrical ratio (``"1"``, ``"2"``, ``"3/2"``, ...) that ``faster_bpm / slower_bpm`` is within
    ``METRICAL_TOLERANCE`` of, or None: two tempi of one song at metrical levels differ by such a ratio."""
    if not (faster_bpm > 0 and slower_bpm > 0):
        return None
    ratio = max(faster_bpm, slower_bpm) / min(faster_bpm, slower_bpm)
    for name, value in METRICAL_RATIOS.items():
        if abs(ratio / value - 1.0) <= METRICAL_TOLERANCE:
            return name
    return None


def _checked(*, madmom: MusicBeats, dp: MusicBeats) -> MusicBeats:
    """madmom-metre's beats, unless its tempo and the DP tracker's are at no metrical ratio: then the DP's.

    Two trackers that hear the same beat at different metrical levels differ by 2, 3, 3/2, ...; a ratio like
    1.39 means madmom's DBN followed a pulse that is no level of the song's metre (2 of the 32 Dance-with-Melody
    songs), where the DP tracker's tempo estimate over the whole track held (README, "Music beats").
    """
    ratio = metrical_ratio(madmom.tempo_bpm, dp.tempo_bpm)
    if ratio is not None or dp.times_s.size < 2:
        return replace(madmom, level=f"{madmom.level}; DP tracker {dp.tempo_bpm:.1f} BPM (ratio {ratio or 'none'})")
    return replace(
        dp,
        level=f"DP tracker: madmom-metre's {madmom.tempo_bpm:.1f} BPM is at no metrical ratio to {dp.tempo_bpm:.1f} BPM",
    )


def _madmom_beats(
    *, y: np.ndarray, env: np.ndarray, tracker: str, config: MusicBeatConfig
) -> tuple[MusicBeats, np.ndarray | None]:
    """Beats of ``y`` (44.1 kHz) from madmom's networks and DBN (``tracker`` "madmom" or "madmom-metre"),
    and the downbeat activation of "madmom-metre" (None for "madmom")."""
    beats_s, level, downbeat_act = madmom_beats.track(
        y=y,
        tracker=tracker,
        onset=env,
        onset_fps=config.envelope_fps,
        min_bpm=config.dbn_min_bpm,
        max_bpm=config.dbn_max_bpm,
        trim=config.trim,
    )
    fallback = 60.0 / float(np.median(np.diff(beats_s))) if beats_s.size > 1 else 0.0
    beats = MusicBeats(
        times_s=beats_s,
        tempo_bpm=_refined_tempo_bpm(beats_s, fallback_bpm=fallback),
        onset_envelope=env,
        envelope_fps=config.envelope_fps,
        level=level,
    )
    return beats, downbeat_act


def _dp_beats(*, env: np.ndarray, config: MusicBeatConfig) -> MusicBeats:
    """Beats from the onset envelope ``env``: the tempo estimate and Ellis' dynamic-programming tracker."""
    fps = config.envelope_fps
    tempo_bpm = dp_tracker.estimate_tempo_bpm(
        envelope=env,
        sr=config.sr,
        hop_length=config.hop_length,
        start_bpm=config.start_bpm,
        std_octaves=config.prior_bpm_std_octaves,
        ac_size_s=config.ac_size_s,
        max_tempo_bpm=config.max_tempo_bpm,
    )
    frames = dp_tracker.track_beats(envelope=env, fps=fps, bpm=tempo_bpm, tightness=config.tightness, trim=config.trim)
    beats_s = frames * config.hop_length / config.sr
    return MusicBeats(
        times_s=beats_s,
        tempo_bpm=_refined_tempo_bpm(beats_s, fallback_bpm=tempo_bpm),
        onset_envelope=env,
        envelope_fps=fps,
    )


def _refined_tempo_bpm(beats_s: np.ndarray, *, fallback_bpm: float) -> float:
    """Tempo from the least-squares beat period of the tracked beats.

    The tempogram estimate can only take the values ``60 * fps / lag`` (117.45 or 120.2 BPM near 120 at
    the default 86 frames per second); the beats themselves follow the onsets, so their mean period is
    finer. With fewer than 4 beats the tempogram estimate is kept.
    """
    if beats_s.size < 4:
        return fallback_bpm
    period_s = np.polyfit(np.arange(beats_s.size, dtype=np.float64), beats_s, deg=1)[0]
    return float(60.0 / period_s)
