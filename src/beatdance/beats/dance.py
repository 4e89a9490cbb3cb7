"""Dance (kinematic) beats: the moments the body slows to a stop, and the dance tempo.

Following Bailando and FACT (SPEC section 7), a dance beat is a local minimum of the joints' speed.
Differences, each chosen on purpose:

* speed is measured on the common ``body13`` joints (head, shoulders, elbows, wrists, hips, knees,
  ankles) so that MediaPipe's face and finger points or the mocap hand markers do not outvote the limbs,
  and the same dance gives the same envelope whatever the layout (``joints="all"`` keeps every joint);
* it is divided by the body's torso length and expressed per second, so the envelope is in torso
  lengths per second: the same dance filmed larger, or sampled at another fps, gives the same result;
* missing points (NaN or low confidence) are interpolated over time instead of breaking the speed;
* minima must stand out from their surroundings within a few seconds (``min_prominence``, a fraction
  of the envelope's 5-95 % range) and be ``min_interval_s`` apart, so pose-estimation jitter during a
  pause is no beat.

The dance tempo is reported at two metrical levels. ``DanceBeats.tempo_bpm`` (also ``bar_tempo_bpm``)
is the dominant period of the same envelope (:func:`dance_tempo`), often one bar: the three AIST++ mBR0
files (80 BPM, camera 0) give 80.2, 39.8 and 40.2 BPM, and 84 % of their beats lie within 70 ms of an
80-BPM grid (42 % for as many random times); on Dance-with-Melody the motion period is one bar (waltz:
music tempo / 3.0; rumba / 2.0; cha-cha about / 3.7; beat-level alignment with the music is not
confirmed on that data, see its README). ``DanceBeats.beat_tempo_bpm`` is the step rate
(:func:`beat_level_tempo`): the fastest whole multiple of the dominant tempo between 60 and 200 BPM at
which the body's stops recur, e.g. a waltz's three steps per bar at the music's tempo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ParameterError
from ..media.keypoints import body_scale, interpolate_missing, to_common_body
from ..media.skeletons import COMMON_BODY_SOURCES
from ..media.spectral import smooth_gaussian
from ..media.types import Motion

_TEMPO_MIN_FPS = 100.0  # envelopes are upsampled to at least this rate before the autocorrelation
_TEMPO_PEAK_RATIO = 0.7  # the shortest period scoring this fraction of the best one is the tempo
_TEMPO_DETREND_SIGMA_S = 1.0  # Gaussian high-pass before the autocorrelation: removes drifts slower than ~4 s
BEAT_MIN_BPM = 60.0  # the range of plausible step rates for the beat-level tempo
BEAT_MAX_BPM = 200.0
_BEAT_MAX_MULTIPLE = 8  # the beat-level tempo is at most this many times the dominant tempo
_BEAT_PEAK_RATIO = 0.6  # the fastest multiple whose autocorrelation peak reaches this fraction of the best one wins
_BEAT_PEAK_TOLERANCE = 0.04  # a peak counts for multiple k within this relative distance of the dominant lag / k
_BEAT_MIN_PEAK = 0.25  # weaker autocorrelation peaks are no evidence of a step rate
_STOP_FLOOR = 0.1  # stops envelope: log(speed + this times the median speed)


@dataclass(frozen=True)
class DanceBeatConfig:
    """Every setting that changes the dance beats found; ``to_dict()`` is stored with the features.

    Points below ``confidence_threshold`` count as missing. ``velocity`` is "central" (central
    differences) or "savgol" (Savitzky-Golay derivative over ``savgol_window_s``, which also smooths).
    The speed envelope is Gaussian-smoothed with ``smoothing_sigma_s`` (0: none; 0.08 s is Bailando's
    5 frames at 60 fps). A beat is a minimum at least ``min_interval_s`` from a deeper one, whose
    prominence within ``prominence_window_s`` (centred on it) is at least ``min_prominence`` times the
    envelope's 5-95 % range; the window keeps pose jitter during a long pause from counting as a beat.
    The tempo search range is ``min_bpm``..``max_bpm``; the lower default is 25 rather than
    :func:`dance_tempo`'s 40 so that a period of about 40 BPM (every other beat at 80 BPM, common in
    AIST++) is not on the range's edge, and a waltz's one step pattern per bar (about 29 BPM) is found.
    """

    joints: Literal["body", "all"] = "body"
    confidence_threshold: float = 0.3
    velocity: Literal["central", "savgol"] = "central"
    savgol_window_s: float = 0.15
    smoothing_sigma_s: float = 0.08
    min_interval_s: float = 0.25
    min_prominence: float = 0.15
    prominence_window_s: float = 2.0
    min_bpm: float = 25.0
    max_bpm: float = 200.0

    def __post_init__(self) -> None:
        if self.joints not in ("body", "all"):
            raise ParameterError(f"DanceBeatConfig.joints={self.joints!r}; expected 'body' or 'all'.")
        if self.velocity not in ("central", "savgol"):
            raise ParameterError(f"DanceBeatConfig.velocity={self.velocity!r}; expected 'central' or 'savgol'.")
        for name in ("confidence_threshold", "smoothing_sigma_s", "min_interval_s", "min_prominence"):
            if not getattr(self, name) >= 0:
                raise ParameterError(f"DanceBeatConfig.{name}={getattr(self, name)} must be >= 0.")
        for name in ("savgol_window_s", "prominence_window_s"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"DanceBeatConfig.{name}={getattr(self, name)} must be > 0 seconds.")
        _check_bpm_range(min_bpm=self.min_bpm, max_bpm=self.max_bpm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DanceBeats:
    """Beat times (float64 seconds, ascending), the dance tempo at two levels and the speed envelope.

    ``tempo_bpm`` is the dominant period of the motion (:func:`dance_tempo`; often one bar, sometimes two
    beats or one), also named ``bar_tempo_bpm``; ``beat_tempo_bpm`` is the step rate, a whole multiple of it
    (:func:`beat_level_tempo`). ``speed_envelope[i]`` (float32, torso lengths per second) describes time
    ``i / envelope_fps``, the motion's own frame rate. A motionless dance gives no beats and tempi 0.
    """

    times_s: np.ndarray
    tempo_bpm: float
    speed_envelope: np.ndarray
    envelope_fps: float
    beat_tempo_bpm: float = 0.0

    @property
    def bar_tempo_bpm(self) -> float:
        """The dominant period's tempo (the same number as ``tempo_bpm``), named for its metrical level."""
        return self.tempo_bpm


def _check_bpm_range(*, min_bpm: float, max_bpm: float) -> None:
    if not 0 < min_bpm < max_bpm:
        raise ParameterError(f"min_bpm={min_bpm}, max_bpm={max_bpm}: need 0 < min_bpm < max_bpm, e.g. 40 and 200.")


def speed_envelope(*, motion: Motion, config: DanceBeatConfig = DanceBeatConfig()) -> np.ndarray:
    """Smoothed mean joint speed per frame (float32, torso lengths per second) at ``motion.fps``."""
    speed = _raw_speed(motion=motion, config=config)
    sigma = config.smoothing_sigma_s * motion.fps
    if sigma > 0 and speed.size > 1:
        speed = smooth_gaussian(speed, sigma=sigma)
    return speed.astype(np.float32)


def _raw_speed(*, motion: Motion, config: DanceBeatConfig) -> np.ndarray:
    """Mean joint speed per frame (float64, torso lengths per second), before smoothing."""
    if config.joints == "body" and motion.skeleton in COMMON_BODY_SOURCES:
        motion = to_common_body(motion)
    joints, observed = interpolate_missing(motion, confidence_threshold=config.confidence_threshold)
    seen = observed.any(axis=0)
    if joints.shape[0] < 2 or not seen.any():
        return np.zeros(joints.shape[0])
    scale = body_scale(joints, skeleton=motion.skeleton)
    joints = joints[:, seen]
    if config.velocity == "central":
        velocity = np.gradient(joints, axis=0)
    else:
        window = max(3, int(round(config.savgol_window_s * motion.fps)) // 2 * 2 + 1)
        if window > joints.shape[0]:
            velocity = np.gradient(joints, axis=0)
        else:
            import scipy.signal  # lazily: scipy.signal costs a music search 0.5 s of start-up

            velocity = scipy.signal.savgol_filter(joints, window, polyorder=2, deriv=1, axis=0, mode="interp")
    return np.linalg.norm(velocity, axis=2).mean(axis=1) * (motion.fps / scale)


def kinematic_beats(*, motion: Motion, config: DanceBeatConfig = DanceBeatConfig()) -> DanceBeats:
    """Dance beats of ``motion``: prominent local minima of its speed envelope, and its tempo at two levels."""
    raw = _raw_speed(motion=motion, config=config)
    env = speed_envelope(motion=motion, config=config)
    fps = float(motion.fps)
    empty = DanceBeats(times_s=np.zeros(0), tempo_bpm=0.0, speed_envelope=env, envelope_fps=fps)
    if env.size < 3:
        return empty
    lo, hi = np.percentile(env, [5, 95])
    if not hi - lo > 1e-9 * max(float(hi), 1.0):
        return empty
    import scipy.signal  # lazily, as in _raw_speed

    minima, _ = scipy.signal.find_peaks(
        -env.astype(np.float64),
        prominence=config.min_prominence * (hi - lo),
        distance=max(1, int(round(config.min_interval_s * fps))),
        wlen=max(3, int(round(config.prominence_window_s * fps)) | 1),
    )
    tempo = dance_tempo(envelope=env, envelope_fps=fps, min_bpm=config.min_bpm, max_bpm=config.max_bpm)
    return DanceBeats(
        times_s=minima / fps,
        tempo_bpm=tempo,
        speed_envelope=env,
        envelope_fps=fps,
        beat_tempo_bpm=beat_level_tempo(speed=raw, fps=fps, dominant_bpm=tempo),
    )


def beat_level_tempo(
    *, speed: np.ndarray, fps: float, dominant_bpm: float, min_bpm: float = BEAT_MIN_BPM, max_bpm: float = BEAT_MAX_BPM
) -> float:
    """The step rate in BPM: a whole multiple k of ``dominant_bpm`` within ``min_bpm``..``max_bpm``; 0 if none.

    A dance beat is a stop of the body, so the unsmoothed joint ``speed`` is turned into a stops envelope,
    ``log(speed + 0.1 * median speed)``, where every stop is a deep dip whether the moves around it are
    large or small (the smoothed speed envelope blurs the stops of fast or small steps). For each k from 1
    to 8 whose tempo ``k * dominant_bpm`` lies in range, the autocorrelation of that envelope (computed as
    in :func:`dance_tempo`) is searched for a local peak of at least 0.25 within 4 % of the dominant lag / k;
    the largest k whose peak reaches 60 % of the best candidate's wins (stops that recur every beat also
    recur every bar). Without any such peak, the dominant tempo itself when it is in range, else 0 (none
    found): the motion-capture dances of Dance-with-Melody, whose speed has no per-step stops, give 0.
    """
    _check_bpm_range(min_bpm=min_bpm, max_bpm=max_bpm)
    multiples = range(1, _BEAT_MAX_MULTIPLE + 1) if dominant_bpm > 0 else range(0)
    ks = [k for k in multiples if min_bpm <= k * dominant_bpm <= max_bpm]
    x = np.asarray(speed, dtype=np.float64).ravel()
    fallback = float(dominant_bpm) if ks and ks[0] == 1 else 0.0
    if not ks or x.size < 3 or not np.all(np.isfinite(x)) or not x.max() > 0:
        return fallback
    x = np.log(x + _STOP_FLOOR * max(float(np.median(x)), 1e-6 * float(x.max())))
    ac, ac_fps = _autocorrelation(x, envelope_fps=fps, scale=float(np.abs(x).max()))
    if ac is None:
        return fallback
    peaks = {}
    for k in ks:
        lag = 60.0 * ac_fps / (k * dominant_bpm)
        lo = max(1, int(np.floor(lag * (1 - _BEAT_PEAK_TOLERANCE))))
        hi = min(ac.size - 2, int(np.ceil(lag * (1 + _BEAT_PEAK_TOLERANCE))))
        inner = np.arange(lo, hi + 1)
        inner = inner[(ac[inner] > ac[inner - 1]) & (ac[inner] >= ac[inner + 1]) & (ac[inner] >= _BEAT_MIN_PEAK)]
        if inner.size:
            peaks[k] = float(ac[inner].max())
    if not peaks:
        return fallback
    best = max(peaks.values())
    return float(max(k for k, v in peaks.items() if v >= _BEAT_PEAK_RATIO * best) * dominant_bpm)


def _autocorrelation(x: np.ndarray, *, envelope_fps: float, scale: float) -> tuple[np.ndarray | None, float]:
    """The normalised unbiased autocorrelation of ``x`` brought to at least 100 fps (linear interpolation)
    and high-passed (minus a Gaussian-smoothed copy, sigma 1 s), and that frame rate; None when what is
    left is flat (nowhere above 1e-12 times ``scale``)."""
    up = int(np.ceil(_TEMPO_MIN_FPS / envelope_fps))
    if up > 1:
        x = np.interp(np.arange(x.size * up) / up, np.arange(x.size), x)
    fps = envelope_fps * up
    x = x - smooth_gaussian(x, sigma=_TEMPO_DETREND_SIGMA_S * fps)
    x -= x.mean()
    if not np.any(np.abs(x) > 1e-12 * scale):
        return None, fps
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / (n - np.arange(n))
    return ac / ac[0], fps


def dance_tempo(*, envelope: np.ndarray, envelope_fps: float, min_bpm: float = 40.0, max_bpm: float = 200.0) -> float:
    """The dominant period of a speed envelope in BPM, from its autocorrelation; 0 when none is found.

    The envelope is brought to at least 100 fps (linear interpolation, so short lags are resolved to
    1 %), and drifts slower than about 4 s are removed (minus a Gaussian-smoothed copy, sigma 1 s).
    Each lag L between ``60 / max_bpm`` and ``60 / min_bpm`` seconds (at most
    half the envelope) scores the mean unbiased autocorrelation at L and 2 L, which favours true periods
    over chance peaks. Among the score's local maxima the shortest lag scoring at least 70 % of the best
    wins (a motion periodic at 0.5 s is also periodic at 1 and 1.5 s), refined by a parabola. Like any
    periodicity estimate it may give a simple multiple or fraction of the musical tempo: dancers move
    on every beat or every other one. A period on the edge of the range is not a peak inside it, so
    leave room: with the default speed envelope and 25..200 BPM, all 27 camera views of the AIST++
    mBR0 files (80 BPM) give 40 or 80 BPM within 3 %, and all 22 Dance-with-Melody waltzes one bar.
    """
    _check_bpm_range(min_bpm=min_bpm, max_bpm=max_bpm)
    if not envelope_fps > 0:
        raise ParameterError(f"envelope_fps={envelope_fps} must be a positive frame rate.")
    x = np.asarray(envelope, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ParameterError(f"envelope has {x.size} values, not all finite; expected a finite 1-D speed envelope.")
    ac, fps = _autocorrelation(x, envelope_fps=envelope_fps, scale=float(np.abs(envelope).max()))
    if ac is None:
        return 0.0
    n = ac.size
    lag_lo = max(2, int(np.floor(fps * 60.0 / max_bpm)))
    lag_hi = min(int(np.ceil(fps * 60.0 / min_bpm)), n // 2 - 1)
    if lag_hi <= lag_lo:
        return 0.0
    lags = np.arange(lag_lo - 1, lag_hi + 2)
    score = 0.5 * (ac[lags] + ac[np.minimum(2 * lags, n - 1)])
    inner = np.arange(1, lags.size - 1)
    peaks = inner[(score[inner] > score[inner - 1]) & (score[inner] >= score[inner + 1]) & (score[inner] > 0)]
    if peaks.size == 0:
        return 0.0
    k = int(peaks[np.argmax(score[peaks] >= _TEMPO_PEAK_RATIO * score[peaks].max())])
    a, b, c = score[k - 1], score[k], score[k + 1]
    curvature = a - 2 * b + c
    lag = lags[k] + (0.5 * (a - c) / curvature if curvature < 0 else 0.0)
    return float(np.clip(60.0 * fps / lag, min_bpm, max_bpm))  # a peak on the range's edge may refine past it
