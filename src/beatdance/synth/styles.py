"""The synthetic music's styles, metres and tempo range, and the exact beat grid they give.

A style fixes the groove (which drum plays on which subdivision), the instrumentation (bass and chord
timbres, chord rhythm) and the tonality (scales and progressions); ``synth.audio`` plays it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

MIN_BPM = 70.0
MAX_BPM = 180.0

# meter -> (beats per bar, subdivisions per beat). In 6/8 the beat is the dotted quarter (two per bar).
METERS: dict[str, tuple[int, int]] = {"2/4": (2, 4), "3/4": (3, 4), "4/4": (4, 4), "6/8": (2, 3)}

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}


@dataclass(frozen=True)
class MusicStyle:
    """What a style sounds like. Drum patterns map (beat in bar, subdivision) to a hit velocity rule.

    ``meters`` and ``bpm_range`` are what :func:`synthesize_pair` draws from; any style plays any meter.
    ``bass_timbre`` / ``chord_timbre`` are harmonic amplitude profiles; ``chord_rhythm`` names a comping
    pattern; ``swing`` delays the off-subdivisions by that fraction of a subdivision.
    """

    name: str
    meters: tuple[str, ...]
    bpm_range: tuple[float, float]
    scales: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    kick: str
    snare: str
    hat: str
    perc: str
    bass_timbre: tuple[float, ...]
    chord_timbre: tuple[float, ...]
    chord_rhythm: str
    swing: float = 0.0


STYLES: dict[str, MusicStyle] = {
    s.name: s
    for s in (
        MusicStyle(
            "waltz",
            ("3/4",),
            (84.0, 180.0),
            ("major",),
            ((0, 3, 4, 0), (0, 5, 1, 4), (0, 3, 0, 4)),
            kick="downbeat",
            snare="none",
            hat="beats",
            perc="none",
            bass_timbre=(1.0, 0.35, 0.1),
            chord_timbre=(1.0, 0.5, 0.33, 0.2, 0.1),
            chord_rhythm="afterbeats",
        ),
        MusicStyle(
            "rock",
            ("4/4", "2/4"),
            (100.0, 160.0),
            ("minor", "mixolydian"),
            ((0, 5, 3, 4), (0, 6, 3, 0), (0, 3, 4, 4)),
            kick="rock",
            snare="backbeat",
            hat="eighths",
            perc="none",
            bass_timbre=(1.0, 0.5, 0.33, 0.25, 0.2),
            chord_timbre=(1.0, 0.7, 0.5, 0.4, 0.3, 0.25),
            chord_rhythm="eighths",
        ),
        MusicStyle(
            "funk",
            ("4/4",),
            (90.0, 120.0),
            ("dorian",),
            ((0, 3), (0, 0, 3, 4), (0, 6)),
            kick="funk",
            snare="backbeat",
            hat="sixteenths",
            perc="none",
            bass_timbre=(1.0, 0.6, 0.2, 0.15),
            chord_timbre=(1.0, 0.3, 0.4, 0.1, 0.2),
            chord_rhythm="stabs",
            swing=0.15,
        ),
        MusicStyle(
            "electronic",
            ("4/4",),
            (118.0, 150.0),
            ("minor",),
            ((0, 5, 2, 6), (0, 0, 5, 6), (0, 3, 5, 4)),
            kick="four",
            snare="clap",
            hat="offbeat",
            perc="none",
            bass_timbre=(1.0, 0.5, 0.33, 0.25, 0.2, 0.16),
            chord_timbre=(1.0, 0.5, 0.33, 0.25, 0.2, 0.16, 0.14),
            chord_rhythm="pads",
        ),
        MusicStyle(
            "latin",
            ("4/4", "2/4", "6/8"),
            (88.0, 132.0),
            ("minor", "major"),
            ((0, 4), (0, 3, 4, 0), (0, 5, 3, 4)),
            kick="latin",
            snare="rim",
            hat="eighths",
            perc="conga",
            bass_timbre=(1.0, 0.25, 0.1),
            chord_timbre=(1.0, 0.45, 0.3, 0.15, 0.1),
            chord_rhythm="montuno",
        ),
        MusicStyle(
            "hiphop",
            ("4/4",),
            (70.0, 100.0),
            ("minor", "dorian"),
            ((0, 5), (0, 3, 5, 4), (0, 6, 5, 6)),
            kick="hiphop",
            snare="backbeat",
            hat="sixteenths",
            perc="none",
            bass_timbre=(1.0, 0.15),
            chord_timbre=(1.0, 0.2, 0.25, 0.05),
            chord_rhythm="downbeats",
            swing=0.3,
        ),
    )
}


def check_style(style: str) -> MusicStyle:
    """The :class:`MusicStyle` called ``style``."""
    if style not in STYLES:
        raise ParameterError(f"style={style!r} is not a synthetic style. Expected one of {sorted(STYLES)}.")
    return STYLES[style]


def check_meter(meter: str) -> tuple[int, int]:
    """(beats per bar, subdivisions per beat) of ``meter``."""
    if meter not in METERS:
        raise ParameterError(f"meter={meter!r} is not supported. Expected one of {sorted(METERS)}, e.g. '4/4'.")
    return METERS[meter]


def check_bpm(bpm: float) -> float:
    """``bpm`` as a float after checking it lies in the synthetic tempo range."""
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise ParameterError(
            f"bpm={bpm} is outside the synthetic range [{MIN_BPM:g}, {MAX_BPM:g}]; pick a tempo inside it."
        )
    return float(bpm)


def beat_grid(*, bpm: float, meter: str, duration_s: float, first_beat_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Beat and downbeat times (float64 s) of a steady tempo, the first beat (a downbeat) at ``first_beat_s``."""
    beats_per_bar, _ = check_meter(meter)
    period = 60.0 / check_bpm(bpm)
    beats = first_beat_s + period * np.arange(int(np.floor((duration_s - first_beat_s) / period)) + 1)
    beats = beats[beats < duration_s]
    return beats, beats[::beats_per_bar]
