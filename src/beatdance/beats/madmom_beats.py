"""Beats from madmom's recurrent networks and dynamic Bayesian network (Böck et al. 2014, 2016).

Two trackers use it (see :class:`~beatdance.beats.music.MusicBeatConfig`):

* ``"madmom"``: madmom's own offline beat tracker, the 8 bidirectional LSTMs of ``RNNBeatProcessor``
  (beat activation, 100 frames per second) and ``DBNBeatTrackingProcessor``;
* ``"madmom-metre"``: the joint beat and downbeat networks of ``RNNDownBeatProcessor`` (their beat and
  downbeat activations summed for the DBN), then :func:`metrical_level`, a check that the DBN's pulse is
  the beat and not a subdivision of it.

The networks are madmom's, run here by :func:`run_networks`, which gives the same activations as
madmom's per-frame Python loop (to float32 rounding) about ten times faster: the eight networks and both
directions step through time together, and the input weights are applied to whole blocks of frames at
once. madmom's models are licensed CC BY-NC-SA 4.0 (non-commercial use only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .madmom_shim import import_madmom

FPS = 100.0  # madmom's activation frame rate
SAMPLE_RATE = 44100  # the rate madmom's networks were trained at
_BLOCK = 512  # frames whose input projections are computed at once

# Metrical-level check (see metrical_level). Thresholds sit halfway between the values measured on the
# 60 synthetic songs of `beatdance synth --num 60 --seed 0` (benchmarks/beat_trackers.py), checked on held-out seeds.
MIN_BEATS_FOR_LEVEL = 16  # fewer DBN beats than this: too little evidence, the DBN's pulse is kept
ACCENT_HALF_WIDTH_S = 0.035  # an accent is the largest value of a signal within this of a time
HALVE_ALTERNATE_RATIO = 1.2  # the stronger over the weaker of alternate pulses in beat activation ...
HALVE_BAR_CONTRAST = 1.5  # ... when no phase of 2 or 3 pulses reaches this in downbeat activation (1 = no bars)
HALVE_ALTERNATE_STRONG = 1.5  # alternate pulses this unequal: halve whatever the downbeats say
TERNARY_SUBDIVISION_RATIO = 0.1  # beat activation halfway between pulses over that on them
# Metre (bar_contrasts, beats_per_bar): bars of 2, 3 or 4 beats, read from the downbeat activation.
BAR_LENGTHS = (2, 3, 4)
QUADRUPLE_OVER_DUPLE = 1.25  # a bar of 4 over one of 2 needs its contrast this much above the 2-beat one


@cache
def _processor(kind: str) -> Any:
    """madmom's ``RNNBeatProcessor`` ("beats") or ``RNNDownBeatProcessor`` ("downbeats"), loaded once."""
    import_madmom()
    if kind == "beats":
        from madmom.features.beats import RNNBeatProcessor

        return RNNBeatProcessor()
    from madmom.features.downbeats import RNNDownBeatProcessor

    return RNNDownBeatProcessor()


def activations(*, y: np.ndarray, kind: str) -> np.ndarray:
    """madmom's activations of mono float audio ``y`` at 44.1 kHz, at 100 frames per second.

    ``kind="beats"``: shape (T,), the beat probability; ``"downbeats"``: shape (T, 2), the probabilities
    of a beat that is not a downbeat and of a downbeat.
    """
    processor = _processor(kind)
    from madmom.audio.signal import Signal

    features, ensemble, *post = processor.processors
    x = np.asarray(features(Signal(np.asarray(y, np.float32), sample_rate=SAMPLE_RATE, num_channels=1)), np.float32)
    networks, average = ensemble.processors
    with threadpool_limits(limits=1, user_api="blas"):  # small products: threads only contend
        out = average(run_networks(networks.processors, x))
    for step in post:  # the downbeat processor drops the "no beat" column
        out = step(out)
    return out


def run_networks(networks: list[Any], x: np.ndarray) -> list[np.ndarray]:
    """The outputs of madmom networks made of bidirectional LSTM layers and one feed-forward layer, on ``x``."""
    n = len(networks)
    data = [x] * n
    for depth in range(len(networks[0].layers) - 1):
        layers = [net.layers[depth] for net in networks]
        lstms = [layer.fwd_layer for layer in layers] + [layer.bwd_layer for layer in layers]
        outs = _run_lstms(lstms, data + [d[::-1] for d in data])
        data = [np.hstack((outs[i], outs[n + i][::-1])) for i in range(n)]
    return [net.layers[-1](d).squeeze() for net, d in zip(networks, data)]


@dataclass
class _Stacked:
    """The weights of M LSTM layers of equal size, stacked: gate order input, forget, cell, output."""

    weights: list[np.ndarray]  # M arrays (num_inputs, 4H)
    recurrent: np.ndarray  # (M, H, 4H)
    bias: np.ndarray  # (M, 4H)
    peep: np.ndarray  # (3, M, H): input, forget and output gate peepholes
    h0: np.ndarray  # (M, H)
    c0: np.ndarray  # (M, H)


def _stack(lstms: list[Any]) -> _Stacked:
    gates = [(lstm.input_gate, lstm.forget_gate, lstm.cell, lstm.output_gate) for lstm in lstms]
    return _Stacked(
        weights=[np.concatenate([g.weights for g in gs], axis=1).astype(np.float32) for gs in gates],
        recurrent=np.stack([np.concatenate([g.recurrent_weights for g in gs], axis=1) for gs in gates]).astype(
            np.float32
        ),
        bias=np.stack([np.concatenate([g.bias for g in gs]) for gs in gates]).astype(np.float32),
        peep=np.stack([np.stack([gs[i].peephole_weights for gs in gates]) for i in (0, 1, 3)]).astype(np.float32),
        h0=np.stack([lstm.init for lstm in lstms]).astype(np.float32),
        c0=np.stack([lstm.cell_init for lstm in lstms]).astype(np.float32),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _run_lstms(lstms: list[Any], inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Each LSTM layer (madmom's peephole LSTM) over its own input sequence, all stepped together."""
    s = _stack(lstms)
    m, hidden = s.h0.shape
    steps = inputs[0].shape[0]
    out = np.zeros((m, steps, hidden), np.float32)
    h, c = s.h0.copy(), s.c0.copy()
    pi, pf, po = s.peep
    for start in range(0, steps, _BLOCK):
        stop = min(start + _BLOCK, steps)
        projected = np.stack([inp[start:stop] @ w for inp, w in zip(inputs, s.weights)], axis=1) + s.bias
        for t in range(stop - start):
            z = projected[t] + np.matmul(h[:, None, :], s.recurrent)[:, 0]
            i = _sigmoid(z[:, :hidden] + c * pi)
            f = _sigmoid(z[:, hidden : 2 * hidden] + c * pf)
            c = np.tanh(z[:, 2 * hidden : 3 * hidden]) * i + c * f
            o = _sigmoid(z[:, 3 * hidden :] + c * po)
            h = np.tanh(c) * o
            out[:, start + t] = h
    return list(out)


@cache
def _dbn(min_bpm: float, max_bpm: float) -> Any:
    import_madmom()
    from madmom.features.beats import DBNBeatTrackingProcessor

    return DBNBeatTrackingProcessor(min_bpm=min_bpm, max_bpm=max_bpm, fps=FPS)


def dbn_beats(activation: np.ndarray, *, min_bpm: float, max_bpm: float) -> np.ndarray:
    """Beat times (float64 s) that madmom's DBN finds in a beat activation at 100 frames per second."""
    if activation.size < 2 or not np.any(activation > 0):
        return np.zeros(0)
    return np.asarray(_dbn(float(min_bpm), float(max_bpm))(np.asarray(activation, np.float32)), np.float64)


def accents(signal: np.ndarray, fps: float, times_s: np.ndarray) -> np.ndarray:
    """The largest value of ``signal`` (sampled at ``fps``) within ``ACCENT_HALF_WIDTH_S`` of each time."""
    lo = np.clip(np.floor((times_s - ACCENT_HALF_WIDTH_S) * fps).astype(int), 0, signal.size - 1)
    hi = np.clip(np.ceil((times_s + ACCENT_HALF_WIDTH_S) * fps).astype(int) + 1, lo + 1, signal.size)
    return np.array([signal[a:b].max() for a, b in zip(lo, hi)], dtype=np.float64)


def phase_means(values: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``values[p::k]`` for each phase p, over whole groups of k only, relative to the overall mean."""
    groups = values[: values.size // k * k].reshape(-1, k)
    return groups.mean(axis=0) / max(float(groups.mean()), 1e-12)


def metrical_level(
    beats_s: np.ndarray,
    *,
    beat_act: np.ndarray,
    downbeat_act: np.ndarray,
    onset: np.ndarray,
    onset_fps: float,
    min_bpm: float,
) -> tuple[np.ndarray, str]:
    """The beats at the metrical level of the beat, from the DBN's pulse ``beats_s``, and what was decided.

    The DBN finds the most regular pulse in the beat activation, which is sometimes a subdivision of the
    beat: eighth notes in a slow 4/4 whose off-beats are busy, or the quarter notes of a 6/8 (three
    pulses per bar of two dotted-quarter beats). Two checks, each needing ``MIN_BEATS_FOR_LEVEL`` pulses:

    * **halve**: the beat activation is a beat probability, so when the pulse is twice the beat,
      alternate pulses differ in it. They must differ by ``HALVE_ALTERNATE_STRONG``, or by
      ``HALVE_ALTERNATE_RATIO`` when the downbeats do not group the pulses into bars either (no phase
      of 2 or of 3 pulses reaches ``HALVE_BAR_CONTRAST`` times the mean downbeat activation). Then the
      stronger phase is kept, unless that tempo would fall below ``min_bpm`` or the downbeats group the
      pulses by 3 and not by 2 (a bar of 3 beats cannot be halved; a fast waltz's beats alternate in
      beat activation because the networks also hear it in one or two).
    * **ternary**: the downbeats group the pulses by 3: a 3/4 bar, or the 3 quarter notes of a 6/8 bar.
      On the half-pulse grid (eighth notes), a 6/8 bar is two beats of three eighths, and both beats are
      louder than each of the four eighths between them; a 3/4 bar has one loud eighth, its downbeat.
      So when the beat activation halfway between pulses is at least ``TERNARY_SUBDIVISION_RATIO`` of
      that on them (the eighths sound at all) and, in onset strength averaged over bars of 6 eighths,
      the two eighths 3 apart at the strongest phase of 3 are both above the other four, the beat is
      every third eighth from that phase (the dotted quarter). Real 3/4 waltzes (Dance with Melody)
      fail the second test: their second beat's eighth is not louder than the rest.
    """
    if beats_s.size < MIN_BEATS_FOR_LEVEL:
        return beats_s, "kept (too few beats to check the level)"
    contrasts = bar_contrasts(beats_s, downbeat_act=downbeat_act)
    bar2, bar3 = contrasts[2], contrasts[3]
    on = accents(beat_act, FPS, beats_s)
    halves = phase_means(on, 2)
    phase = int(np.argmax(halves))
    alternate = float(halves[phase] / max(float(halves.min()), 1e-12))
    no_bars = max(bar2, bar3) < HALVE_BAR_CONTRAST
    triple = bar3 >= HALVE_BAR_CONTRAST > bar2
    slow_enough = 30.0 / float(np.median(np.diff(beats_s))) >= min_bpm
    if (
        slow_enough
        and not triple
        and (alternate >= HALVE_ALTERNATE_STRONG or (no_bars and alternate >= HALVE_ALTERNATE_RATIO))
    ):
        return beats_s[phase::2], f"halved (alternate beats {alternate:.2f}, bar contrast {max(bar2, bar3):.2f})"
    if bar3 > bar2:
        mid = (beats_s[:-1] + beats_s[1:]) / 2
        subdivision = float(accents(beat_act, FPS, mid).mean() / max(on.mean(), 1e-12))
        grid = np.sort(np.concatenate([beats_s, mid]))
        eighths = accents(onset, onset_fps, grid)
        phase = int(np.argmax(phase_means(eighths, 3)))
        bar = phase_means(eighths, 6)
        compound = float(min(bar[phase], bar[phase + 3]) / max(float(np.delete(bar, [phase, phase + 3]).max()), 1e-12))
        if subdivision >= TERNARY_SUBDIVISION_RATIO and compound > 1.0:
            return grid[phase::3], f"ternary (subdivisions {subdivision:.2f}, compound beats {compound:.2f})"
        return beats_s, f"kept (triple; subdivisions {subdivision:.2f}, compound beats {compound:.2f})"
    return beats_s, f"kept (alternate beats {alternate:.2f}, bar contrast {max(bar2, bar3):.2f})"


def bar_contrasts(beats_s: np.ndarray, *, downbeat_act: np.ndarray) -> dict[int, float]:
    """How strongly the downbeat activation groups the beats into bars of 2, 3 and 4: for each length k,
    the mean activation at the strongest of the k phases over the mean at all beats (1 = no bars).
    Empty with fewer than ``MIN_BEATS_FOR_LEVEL`` beats."""
    if beats_s.size < MIN_BEATS_FOR_LEVEL:
        return {}
    down = accents(downbeat_act, FPS, beats_s)
    return {k: float(phase_means(down, k).max()) for k in BAR_LENGTHS}


def beats_per_bar(contrasts: dict[int, float]) -> int:
    """The bar length the contrasts show: 3 when bars of 3 stand out more than bars of 4 (a waltz), else 4,
    or 2 when bars of 4 are no clearer than bars of 2 (``QUADRUPLE_OVER_DUPLE``); 0 (unknown) when no
    length reaches ``HALVE_BAR_CONTRAST`` or there were too few beats. On the 32 Dance-with-Melody songs
    the contrast for 3 is 1.86-2.93 for the 22 waltzes (for 4 at most 1.40) and at most 1.08 for the rest."""
    if not contrasts or max(contrasts.values()) < HALVE_BAR_CONTRAST:
        return 0
    if contrasts[3] > contrasts[4]:
        return 3
    return 4 if contrasts[4] >= QUADRUPLE_OVER_DUPLE * contrasts[2] else 2


def trim_weak_ends(beats_s: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """``beats_s`` without the leading and trailing beats whose activation is below half the RMS of all
    (librosa's rule for ``trim``): the DBN carries its pulse on past the last note or before the first."""
    if beats_s.size == 0:
        return beats_s
    strength = accents(activation, FPS, beats_s)
    strong = np.flatnonzero(strength >= 0.5 * np.sqrt(np.mean(strength**2)))
    return beats_s[strong[0] : strong[-1] + 1]


def track(
    *, y: np.ndarray, tracker: str, onset: np.ndarray, onset_fps: float, min_bpm: float, max_bpm: float, trim: bool
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Beat times (float64 s) of mono audio ``y`` at 44.1 kHz with ``tracker`` "madmom" or "madmom-metre",
    a note of the metrical decision, and the downbeat activation (100 fps; None for "madmom", which has no
    downbeat network); ``onset`` is the onset strength that :func:`metrical_level` uses.
    With ``trim``, weak beats at the start and end are dropped (:func:`trim_weak_ends`)."""
    downbeat_act = None
    if tracker == "madmom":
        beat_act = activations(y=y, kind="beats")
        beats_s, level = dbn_beats(beat_act, min_bpm=min_bpm, max_bpm=max_bpm), "DBN pulse"
    else:
        act = activations(y=y, kind="downbeats")
        beat_act, downbeat_act = act.sum(axis=1), act[:, 1]
        pulse = dbn_beats(beat_act, min_bpm=min_bpm, max_bpm=max_bpm)
        beats_s, level = metrical_level(
            pulse, beat_act=beat_act, downbeat_act=downbeat_act, onset=onset, onset_fps=onset_fps, min_bpm=min_bpm
        )
    return (trim_weak_ends(beats_s, beat_act) if trim else beats_s), level, downbeat_act
