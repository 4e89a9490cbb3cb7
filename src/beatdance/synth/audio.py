"""Synthetic music with known beats and downbeats: drums, bass and chords in one of several styles.

Every sound is made here from sines, harmonics and filtered noise with attack/decay envelopes; nothing
is sampled. A style fixes the groove (which drum plays on which subdivision), the instrumentation
(bass and chord timbres, chord rhythm) and the tonality (scale and progressions). The beat grid is
exact (``beat_times_s``); hits are humanised by a few milliseconds, so the grid is the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..errors import ParameterError
from .styles import SCALES, MusicStyle, beat_grid, check_bpm, check_meter, check_style


@dataclass
class SynthMusic:
    """Mono float32 audio in [-1, 1] at ``sr`` Hz with its exact beat and downbeat times (seconds)."""

    audio: np.ndarray
    sr: int
    beat_times_s: np.ndarray
    downbeat_times_s: np.ndarray


# --- instruments: each returns a float64 one-shot of unit-ish peak --------------------------------


def _env(n: int, *, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / sr
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    return attack * np.exp(-t / decay_s)


def _noise(n: int, *, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


@cache
def _drum(name: str, sr: int) -> np.ndarray:
    """A drum one-shot (cached per sample rate; the noise is fixed so the song depends on its seed only)."""
    if name == "kick":
        n = int(0.45 * sr)
        t = np.arange(n) / sr
        freq = 45.0 + 95.0 * np.exp(-t / 0.04)
        body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _env(n, sr=sr, attack_s=0.002, decay_s=0.16)
        click = np.diff(_noise(n + 1, seed=1)) * _env(n, sr=sr, attack_s=0.0005, decay_s=0.004)
        return body + 0.15 * click
    if name == "snare":
        n = int(0.3 * sr)
        t = np.arange(n) / sr
        tone = np.sin(2 * np.pi * 185.0 * t) * _env(n, sr=sr, attack_s=0.001, decay_s=0.05)
        rattle = np.diff(_noise(n + 1, seed=2)) * _env(n, sr=sr, attack_s=0.001, decay_s=0.09)
        return 0.6 * tone + 0.45 * rattle
    if name in ("hat", "open_hat"):
        n = int((0.35 if name == "open_hat" else 0.08) * sr)
        hiss = np.diff(_noise(n + 2, seed=3), n=2) / 2.0
        return 0.5 * hiss * _env(n, sr=sr, attack_s=0.0005, decay_s=0.12 if name == "open_hat" else 0.018)
    if name == "clap":
        n = int(0.25 * sr)
        bursts = _env(n, sr=sr, attack_s=0.0005, decay_s=0.008)
        shifted = np.zeros(n)
        for delay_s in (0.0, 0.011, 0.022):
            d = int(delay_s * sr)
            shifted[d:] += bursts[: n - d]
        tail = _env(n, sr=sr, attack_s=0.02, decay_s=0.06)
        return 0.5 * np.diff(_noise(n + 1, seed=4)) * (shifted + 0.6 * tail)
    if name == "rim":
        n = int(0.06 * sr)
        t = np.arange(n) / sr
        return (np.sin(2 * np.pi * 1700.0 * t) + 0.5 * np.sin(2 * np.pi * 820.0 * t)) * _env(
            n, sr=sr, attack_s=0.0003, decay_s=0.012
        )
    if name in ("conga_low", "conga_high"):
        n = int(0.3 * sr)
        t = np.arange(n) / sr
        base = 220.0 if name == "conga_low" else 330.0
        freq = base * (1.0 + 0.25 * np.exp(-t / 0.015))
        return np.sin(2 * np.pi * np.cumsum(freq) / sr) * _env(n, sr=sr, attack_s=0.001, decay_s=0.07)
    raise AssertionError(name)


def _tone(
    *,
    freq_hz: float,
    duration_s: float,
    sr: int,
    timbre: tuple[float, ...],
    attack_s: float,
    decay_s: float,
    release_s: float = 0.03,
) -> np.ndarray:
    """A harmonic note: partial k has amplitude ``timbre[k-1]``; exponential decay and a short release."""
    n = int((duration_s + release_s) * sr)
    t = np.arange(n) / sr
    wave = np.zeros(n)
    for k, amp in enumerate(timbre, start=1):
        if k * freq_hz < sr / 2.2:
            wave += amp * np.sin(2 * np.pi * k * freq_hz * t + 0.3 * k)
    env = _env(n, sr=sr, attack_s=attack_s, decay_s=decay_s)
    env *= np.clip((duration_s + release_s - t) / release_s, 0.0, 1.0)
    return wave * env / max(sum(timbre), 1.0)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _triad(*, degree: int, scale: tuple[int, ...], root_midi: int) -> list[int]:
    """MIDI notes of the diatonic triad on scale ``degree`` (0-based), in close position."""
    notes = []
    for step in (0, 2, 4):
        d = degree + step
        notes.append(root_midi + scale[d % 7] + 12 * (d // 7))
    return notes


# --- drum patterns ---------------------------------------------------------------------------------


def _drum_hits(
    style: MusicStyle, *, beat: int, sub: int, subs: int, beats_per_bar: int, variant: np.ndarray
) -> list[tuple[str, float]]:
    """The drum hits (instrument, velocity) of one subdivision. ``variant`` holds per-song random choices."""
    hits: list[tuple[str, float]] = []
    on_beat = sub == 0
    half = subs // 2 if subs % 2 == 0 else None
    backbeat = beat % 2 == 1 if beats_per_bar != 3 else beat > 0
    kick = {
        "downbeat": on_beat and beat == 0,
        "four": on_beat,
        "rock": on_beat and beat % 2 == 0 or (variant[0] > 0.5 and beats_per_bar == 4 and beat == 3 and sub == half),
        "funk": on_beat
        and beat % 2 == 0
        or (beat == 1 and sub == 3 and variant[1] > 0.5)
        or (beat == 2 and sub == 2 and variant[1] <= 0.5),
        "latin": on_beat and beat % 2 == 0 or (subs == 4 and beat % 2 == 1 and sub == subs - 1),
        "hiphop": on_beat and beat == 0 or (beat == 1 and sub == 3 and variant[2] > 0.3) or (beat == 2 and sub == half),
    }[style.kick]
    if kick:
        hits.append(("kick", (1.0 if beat == 0 else 0.85) if on_beat else 0.5))
    if style.snare == "backbeat" and on_beat and backbeat:
        hits.append(("snare", 0.8 if beats_per_bar != 3 else 0.5))
    if style.snare == "backbeat" and beats_per_bar == 4 and beat == 3 and sub == 3 and variant[3] > 0.6:
        hits.append(("snare", 0.25))
    if style.snare == "clap" and on_beat and backbeat:
        hits.append(("clap", 0.7))
    if style.snare == "rim" and sub == (0 if beat % 2 else half or 0) and beat in (0, 1, 2 if beats_per_bar > 2 else 1):
        hits.append(("rim", 0.5))
    if style.hat == "beats" and on_beat:
        hits.append(("hat", 0.4 if beat == 0 else 0.25))
    elif style.hat == "eighths" and (half is None or sub % half == 0):
        hits.append(("hat", 0.45 if on_beat else 0.3))
    elif style.hat == "sixteenths":
        hits.append(("hat", 0.4 if on_beat else 0.28 if sub == half else 0.18))
    elif style.hat == "offbeat" and sub == half:
        hits.append(("open_hat", 0.45))
    elif style.hat == "offbeat" and sub % 2 == 1:
        hits.append(("hat", 0.15))
    if style.perc == "conga" and sub in (0, subs - 1):
        hits.append(("conga_low" if (beat + sub) % 2 == 0 else "conga_high", 0.45 if on_beat else 0.25))
    return hits


def _chord_steps(
    style: MusicStyle, *, beat: int, sub: int, subs: int, beats_per_bar: int
) -> tuple[float, float] | None:
    """(velocity, length in subdivisions) of a chord hit at this subdivision, or None."""
    half = subs // 2 if subs % 2 == 0 else None
    rhythm = style.chord_rhythm
    if rhythm == "afterbeats":
        return (0.5, subs * 0.8) if sub == 0 and beat > 0 else None
    if rhythm == "eighths":
        return (0.45 if sub == 0 else 0.35, (half or 1) * 0.9) if half is None or sub % half == 0 else None
    if rhythm == "stabs":
        return (0.35, 0.7) if (beat, sub) in ((0, 2), (1, 3), (2, 2), (3, 1)) else None
    if rhythm == "pads":
        return (0.35, beats_per_bar * subs) if beat == 0 and sub == 0 else (0.3, 0.8) if sub == half else None
    if rhythm == "montuno":
        return (0.4, 0.9) if sub == 0 and beat > 0 else (0.25, 0.9) if sub == subs - 1 and beat % 2 == 0 else None
    if rhythm == "downbeats":
        return (0.4, subs * beats_per_bar * 0.9) if beat == 0 and sub == 0 else None
    raise AssertionError(rhythm)


def _bass_note(style: MusicStyle, *, beat: int, sub: int, subs: int, root: int, fifth: int) -> int | None:
    """The MIDI bass note at this subdivision, or None."""
    if style.name == "funk":
        return {(0, 0): root, (0, 2): root + 12, (1, 2): root, (2, 0): fifth, (3, 0): root + 12, (3, 2): root}.get(
            (beat, sub)
        )
    if style.name == "latin":
        anticipation = subs - 1 if subs == 4 else 0  # the tumbao pushes the fifth; in 6/8 it sits on the beat
        return root if (beat % 2, sub) == (0, 0) else fifth if (beat % 2, sub) == (1, anticipation) else None
    if style.name == "waltz":
        return (root if beat == 0 else None) if sub == 0 else None
    if style.name == "electronic":
        return root if sub == subs // 2 else None
    if style.name == "hiphop":
        return root if (beat, sub) in ((0, 0), (2, 2)) else None
    return root if sub % max(subs // 2, 1) == 0 else None


class _Mixer:
    """The drum and tonal buffers of a song of ``n`` samples; sounds are added at a time, cut at the ends."""

    def __init__(self, *, n: int, sr: int) -> None:
        self.n, self.sr = n, sr
        self.drums, self.tonal = np.zeros(n), np.zeros(n)

    def add(self, buffer: np.ndarray, sound: np.ndarray, time_s: float, gain: float) -> None:
        start = int(round(time_s * self.sr))
        if start >= self.n or start + sound.size <= 0:
            return
        lo = max(0, -start)
        hi = min(sound.size, self.n - start)
        buffer[start + lo : start + hi] += gain * sound[lo:hi]


@dataclass
class _BarHarmony:
    """One bar's chord (MIDI pitches) and the bass's root and fifth."""

    chord: list[int]
    root: int
    fifth: int


@dataclass
class _Step:
    """One subdivision of a beat: where it is in the bar and when it sounds."""

    beat: int
    sub: int
    subs: int
    beats_per_bar: int
    time_s: float


def _play_step(
    mixer: _Mixer,
    spec: MusicStyle,
    step: _Step,
    harmony: _BarHarmony,
    *,
    period: float,
    variant: np.ndarray,
    jitter: float,
) -> None:
    """The drums, bass note and chord of ``spec`` at one subdivision, each at ``jitter`` x its velocity."""
    sr, t, sub_s = mixer.sr, step.time_s, period / step.subs
    where = {"beat": step.beat, "sub": step.sub, "subs": step.subs}
    for name, velocity in _drum_hits(spec, **where, beats_per_bar=step.beats_per_bar, variant=variant):
        mixer.add(mixer.drums, _drum(name, sr), t, velocity * jitter)
    note = _bass_note(spec, **where, root=harmony.root, fifth=harmony.fifth)
    if note is not None:
        length = period * (0.9 if spec.name in ("waltz", "hiphop") else 0.45)
        bass = _tone(
            freq_hz=_midi_hz(note), duration_s=length, sr=sr, timbre=spec.bass_timbre, attack_s=0.005, decay_s=0.35
        )
        mixer.add(mixer.tonal, bass, t, 0.55 * jitter)
    comp = _chord_steps(spec, **where, beats_per_bar=step.beats_per_bar)
    if comp is None:
        return
    velocity, length_subs = comp
    pad = spec.chord_rhythm == "pads"
    for pitch in harmony.chord:
        tone = _tone(
            freq_hz=_midi_hz(pitch),
            duration_s=length_subs * sub_s,
            sr=sr,
            timbre=spec.chord_timbre,
            attack_s=0.08 if pad else 0.004,
            decay_s=2.0 if pad else 0.25,
        )
        mixer.add(mixer.tonal, tone, t, velocity * 0.3 * jitter)


def synthesize_music(
    *, bpm: float, meter: str, style: str, duration_s: float, sr: int = 22050, seed: int
) -> SynthMusic:
    """A ``duration_s`` song at ``bpm`` in ``meter`` and ``style`` (see :data:`STYLES`), reproducible by ``seed``.

    The first downbeat falls 0.1-0.4 s in; all beats are exactly ``60 / bpm`` apart.
    """
    spec = check_style(style)
    beats_per_bar, subs = check_meter(meter)
    bpm = check_bpm(bpm)
    if not duration_s > 0:
        raise ParameterError(f"duration_s={duration_s} must be strictly positive, e.g. 20.0.")
    if sr < 8000:
        raise ParameterError(f"sr={sr} Hz is too low for the instruments; use at least 8000, e.g. 22050.")
    rng = np.random.default_rng(seed)
    first_beat_s = float(rng.uniform(0.1, 0.4))
    beats, downbeats = beat_grid(bpm=bpm, meter=meter, duration_s=duration_s, first_beat_s=first_beat_s)
    scale = SCALES[spec.scales[int(rng.integers(len(spec.scales)))]]
    progression = spec.progressions[int(rng.integers(len(spec.progressions)))]
    key = int(rng.integers(0, 12))
    variant = rng.random(8)
    period = 60.0 / bpm
    sub_s = period / subs
    n = int(round(duration_s * sr))
    mixer = _Mixer(n=n, sr=sr)
    # Bars from one before the first downbeat, so that a pickup bar fills the intro.
    bar_s = beats_per_bar * period
    first_bar = -int(np.ceil(first_beat_s / bar_s))
    for bar in range(first_bar, len(downbeats) + 1):
        degree = progression[bar % len(progression)]
        harmony = _BarHarmony(
            chord=_triad(degree=degree, scale=scale, root_midi=key + 55),
            root=key + 36 + scale[degree % 7],
            fifth=key + 36 + scale[(degree + 4) % 7] + (12 if (degree + 4) % 7 < degree % 7 else 0),
        )
        bar_start = first_beat_s + bar * bar_s
        for beat in range(beats_per_bar):
            for sub in range(subs):
                t = bar_start + (beat * subs + sub) * sub_s
                if sub % 2 == 1:
                    t += spec.swing * sub_s
                t += float(rng.normal(0.0, 0.003))
                step = _Step(beat=beat, sub=sub, subs=subs, beats_per_bar=beats_per_bar, time_s=t)
                _play_step(
                    mixer, spec, step, harmony, period=period, variant=variant, jitter=float(rng.uniform(0.85, 1.0))
                )
    mix = 0.8 * mixer.drums + 0.6 * mixer.tonal
    mix = np.tanh(1.2 * mix / max(float(np.max(np.abs(mix))), 1e-9))
    mix *= 0.9 / max(float(np.max(np.abs(mix))), 1e-9)
    return SynthMusic(audio=mix.astype(np.float32), sr=sr, beat_times_s=beats, downbeat_times_s=downbeats)
