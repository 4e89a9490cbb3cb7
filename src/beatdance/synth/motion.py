"""Synthetic dance on given beats: a COCO-17 figure that moves between key poses and rests on each beat.

A pose is a handful of body parameters (bounce, lean, turn, arm and leg angles, ...) turned into joint
positions by forward kinematics. One key pose is chosen per beat from the style's movement vocabulary
(one move per bar plus the style's pulse, with bigger moves on downbeats), and the parameters travel
between consecutive key poses with a cosine ease, so every joint's velocity is zero exactly at each
beat and has a single hump in between: the joint-speed minima are the beats.

Coordinates are a normalised stage frame: x to the right and y downwards in [0, 1] (the square video
frame), the figure about 0.65 tall, the floor at y = 0.88; z (optional) is depth, positive away from
the viewer, on the scale of x.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ParameterError
from ..media.skeletons import COCO17
from ..media.types import Motion
from .styles import check_style

FLOOR_Y = 0.88

# Body proportions in stage units.
_TORSO = 0.20
_SHOULDER_HALF = 0.072
_HIP_HALF = 0.048
_NECK = 0.085
_UPPER_ARM = 0.115
_FOREARM = 0.105
_THIGH = 0.155
_SHIN = 0.15

_PARAMS = (
    "x",
    "jump",
    "bend",
    "lean",
    "yaw",
    "nod",
    "tilt",
    "l_arm",
    "r_arm",
    "l_elbow",
    "r_elbow",
    "l_leg",
    "r_leg",
    "l_knee",
    "r_knee",
)
_P = {name: i for i, name in enumerate(_PARAMS)}

# Anatomical limits (radians) applied to the summed key poses, so that amplified moves stay plausible.
_LIMITS = {
    "l_arm": (0.0, 2.8),
    "r_arm": (0.0, 2.8),
    "l_elbow": (-0.3, 2.3),
    "r_elbow": (-0.3, 2.3),
    "l_leg": (-0.1, 1.1),
    "r_leg": (-0.1, 1.1),
    "l_knee": (0.0, 1.4),
    "r_knee": (0.0, 1.4),
}

# A move gives the parameter offsets of the key pose on beat ``k`` of a bar of ``n`` beats; ``side`` is
# +1 or -1 (which side leads this bar) and ``amp`` scales the move (the dancer's energy).
Move = Callable[[int, int, int, float], dict[str, float]]


def _alt(k: int) -> float:
    return 1.0 if k % 2 == 0 else -1.0


def _bounce(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    if n % 2 == 1 and k == n - 1:
        return {"bend": 0.18 * amp}
    return {"bend": 0.35 * amp if k % 2 == 0 else 0.05}


def _rise_fall(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    level = (0.45, 0.0, 0.22, 0.1)[k % 4 if n != 3 else k]
    return {"bend": level * amp, "l_arm": 0.5 * level, "r_arm": 0.5 * level, "lean": 0.1 * (level - 0.2) * amp}


def _hip_sway(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {"x": 0.02 * amp * side * _alt(k), "lean": -0.08 * amp * side * _alt(k), "bend": 0.15}


def _sway(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {"lean": 0.14 * amp * side * _alt(k), "l_arm": 0.2 * amp * _alt(k), "r_arm": -0.2 * amp * _alt(k)}


def _arm_wave(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    up, down = 2.3 * amp, 0.4
    lead = k % 2 == 0
    return {
        "l_arm": up if lead else down,
        "r_arm": down if lead else up,
        "l_elbow": 0.3 if lead else 1.2,
        "r_elbow": 1.2 if lead else 0.3,
    }


def _arms_up(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    high = k % 2 == 0
    return {
        "l_arm": 2.7 * amp if high else 1.3,
        "r_arm": 2.7 * amp if high else 1.3,
        "l_elbow": 0.15 if high else 1.6,
        "r_elbow": 0.15 if high else 1.6,
    }


def _fist_pump(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    arm = "l" if side > 0 else "r"
    high = k % 2 == 0
    return {f"{arm}_arm": 2.6 * amp if high else 1.1, f"{arm}_elbow": 0.2 if high else 2.0}


def _head_bang(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {"nod": 0.6 * amp if k % 2 == 0 else -0.2, "lean": 0.04 * side * _alt(k)}


def _shimmy(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {
        "lean": 0.07 * amp * _alt(k),
        "tilt": -0.12 * amp * _alt(k),
        "l_elbow": 0.5 * _alt(k),
        "r_elbow": -0.5 * _alt(k),
        "l_arm": 0.2,
        "r_arm": 0.2,
    }


def _step(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    out = k % 2 == 0
    leg = "l" if side > 0 else "r"
    return {"x": 0.03 * amp * side * (1.0 if out else 0.0), f"{leg}_leg": 0.3 * amp if out else 0.05}


def _kick(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    leg = "l" if side > 0 else "r"
    kicking = k == n - 1 or (n >= 4 and k == 1)
    return {f"{leg}_leg": 0.75 * amp, f"{leg}_knee": 0.5} if kicking else {f"{leg}_leg": 0.05}


def _turn(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {"yaw": 0.5 * amp * side * np.sin(np.pi * (k + 1) / (n + 1))}


def _jump(k: int, n: int, side: int, amp: float) -> dict[str, float]:
    return {"jump": 0.06 * amp, "bend": -0.3} if k == n - 1 else {"bend": 0.3 * amp if k % 2 == 0 else 0.05}


# Per style: the pulse danced on every beat, the moves one of which is picked per bar, the base pose.
_VOCABULARY: dict[str, tuple[Move, tuple[Move, ...], dict[str, float]]] = {
    "waltz": (_rise_fall, (_sway, _turn, _step), {"l_arm": 1.5, "r_arm": 1.5, "l_elbow": 0.9, "r_elbow": 0.9}),
    "rock": (
        _bounce,
        (_head_bang, _fist_pump, _kick, _step),
        {"l_arm": 0.4, "r_arm": 0.4, "l_elbow": 0.6, "r_elbow": 0.6},
    ),
    "funk": (_bounce, (_step, _arm_wave, _shimmy, _kick), {"l_arm": 0.5, "r_arm": 0.5, "l_elbow": 1.0, "r_elbow": 1.0}),
    "electronic": (
        _bounce,
        (_arms_up, _jump, _arm_wave, _step),
        {"l_arm": 0.6, "r_arm": 0.6, "l_elbow": 1.2, "r_elbow": 1.2},
    ),
    "latin": (
        _hip_sway,
        (_step, _turn, _arm_wave, _shimmy),
        {"l_arm": 0.9, "r_arm": 0.9, "l_elbow": 1.4, "r_elbow": 1.4},
    ),
    "hiphop": (
        _bounce,
        (_arm_wave, _kick, _head_bang, _step),
        {"l_arm": 0.35, "r_arm": 0.35, "l_elbow": 0.8, "r_elbow": 0.8},
    ),
}


def _leg(hip: np.ndarray, *, angle: float, knee_bend: float, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle of a leg whose thigh leaves the vertical by ``angle`` outwards (image axes, y down)."""
    knee = hip + _THIGH * np.array([sign * np.sin(angle), np.cos(angle)])
    shin = angle - knee_bend
    return knee, knee + _SHIN * np.array([sign * np.sin(shin), np.cos(shin)])


def _pose_joints(p: np.ndarray, *, home_x: float) -> np.ndarray:
    """(17, 3) COCO joints of one parameter vector: frontal-plane kinematics, then the turn about the hips."""
    g = {name: float(p[i]) for name, i in _P.items()}
    bend = g["bend"]
    # Knees bend outward (plie); the hips drop so that the lower foot stays on the floor.
    legs = {}
    for side, sign in (("l", 1.0), ("r", -1.0)):
        hip_rel = np.array([sign * _HIP_HALF, 0.0])
        legs[side] = _leg(
            hip_rel, angle=0.08 + 0.35 * bend + g[f"{side}_leg"], knee_bend=0.7 * bend + g[f"{side}_knee"], sign=sign
        )
    foot_drop = max(legs["l"][1][1], legs["r"][1][1])
    hips_c = np.array([home_x + g["x"], FLOOR_Y - foot_drop - g["jump"]])
    lean = g["lean"]
    up = np.array([np.sin(lean), -np.cos(lean)])
    across = np.array([np.cos(lean), np.sin(lean)])
    shoulders_c = hips_c + _TORSO * up
    head_angle = lean + g["tilt"]
    head_up = np.array([np.sin(head_angle), -np.cos(head_angle)])
    head_across = np.array([np.cos(head_angle), np.sin(head_angle)])
    nose = shoulders_c + (_NECK - 0.025 * g["nod"]) * head_up
    eye_up = 0.022 - 0.012 * g["nod"]
    joints = np.zeros((17, 2))
    joints[0] = nose
    joints[1] = nose + 0.022 * head_across + eye_up * head_up
    joints[2] = nose - 0.022 * head_across + eye_up * head_up
    joints[3] = nose + 0.048 * head_across + 0.5 * eye_up * head_up - 0.01 * head_up
    joints[4] = nose - 0.048 * head_across + 0.5 * eye_up * head_up - 0.01 * head_up
    for side, sign, sh, el, wr in (("l", 1.0, 5, 7, 9), ("r", -1.0, 6, 8, 10)):
        joints[sh] = shoulders_c + sign * _SHOULDER_HALF * across
        arm = g[f"{side}_arm"]
        fore = arm + g[f"{side}_elbow"]
        joints[el] = joints[sh] + _UPPER_ARM * np.array([sign * np.sin(arm + sign * lean), np.cos(arm + sign * lean)])
        joints[wr] = joints[el] + _FOREARM * np.array([sign * np.sin(fore + sign * lean), np.cos(fore + sign * lean)])
    for side, hip, knee, ankle in (("l", 11, 13, 15), ("r", 12, 14, 16)):
        hip_rel = np.array([(1.0 if side == "l" else -1.0) * _HIP_HALF, 0.0])
        joints[hip] = hips_c + hip_rel
        joints[knee] = hips_c + legs[side][0]
        joints[ankle] = hips_c + legs[side][1]
    # Turn about the vertical axis through the hips: x shrinks by cos(yaw), depth grows by sin(yaw).
    yaw = g["yaw"]
    dx = joints[:, 0] - hips_c[0]
    out = np.empty((17, 3))
    out[:, 0] = hips_c[0] + dx * np.cos(yaw)
    out[:, 1] = joints[:, 1]
    out[:, 2] = dx * np.sin(yaw)
    # The face sits in front of the head: it moves with the turn more than the skull does.
    out[:5, 0] += 0.03 * np.sin(yaw)
    return out


def _extended_beats(beat_times_s: np.ndarray, *, duration_s: float) -> tuple[np.ndarray, int]:
    """The beats with the median period repeated before the start and after the end, and how many were prepended."""
    period = float(np.median(np.diff(beat_times_s))) if beat_times_s.size > 1 else 0.5
    before = int(np.ceil(beat_times_s[0] / period)) + 1
    after = int(np.ceil(max(duration_s - beat_times_s[-1], 0.0) / period)) + 1
    head = beat_times_s[0] - period * np.arange(before, 0, -1)
    tail = beat_times_s[-1] + period * np.arange(1, after + 1)
    return np.concatenate([head, beat_times_s, tail]), before


def synthesize_motion(
    *,
    beat_times_s: np.ndarray,
    downbeat_times_s: np.ndarray,
    style: str,
    duration_s: float,
    fps: float = 25.0,
    seed: int,
    with_depth: bool = False,
) -> Motion:
    """A ``coco17`` dance of ``duration_s`` at ``fps`` whose key poses land on ``beat_times_s``.

    Bars start at ``downbeat_times_s``; the style picks the vocabulary (see module docstring). Joints
    are (T, 17, 2), or (T, 17, 3) with depth when ``with_depth``; confidence is all ones.
    """
    check_style(style)
    beats = np.asarray(beat_times_s, dtype=np.float64)
    downbeats = np.asarray(downbeat_times_s, dtype=np.float64)
    if not fps > 0:
        raise ParameterError(f"fps={fps} must be strictly positive, e.g. fps=25.")
    if not duration_s > 0:
        raise ParameterError(f"duration_s={duration_s} must be strictly positive.")
    if beats.ndim != 1 or beats.size < 2 or np.any(np.diff(beats) <= 0):
        raise ParameterError(
            f"beat_times_s must hold at least 2 strictly increasing times; got {beats.size} values. "
            "Pass the beats of the music, e.g. SynthMusic.beat_times_s."
        )
    rng = np.random.default_rng(seed)
    pulse, moves, base = _VOCABULARY[style]
    amp = float(rng.uniform(0.8, 1.15))
    home_x = 0.5 + float(rng.uniform(-0.04, 0.04))
    keys_t, first = _extended_beats(beats, duration_s=duration_s)
    meter_beats = int(np.median(np.diff(np.searchsorted(beats, downbeats)))) if downbeats.size > 1 else 4
    # Extended index of the first downbeat: bars and beat-in-bar are counted from it in both directions.
    bar_origin = first + (int(np.searchsorted(beats, downbeats[0] - 1e-6)) if downbeats.size else 0)
    move_of_bar: dict[int, tuple[Move, int]] = {}
    keys = np.zeros((keys_t.size, len(_PARAMS)))
    for i in range(keys_t.size):
        bar, k = divmod(i - bar_origin, meter_beats)
        if bar not in move_of_bar:
            move_of_bar[bar] = (moves[int(rng.integers(len(moves)))], 1 if rng.random() < 0.5 else -1)
        move, side = move_of_bar[bar]
        # A small bounce alternating on every beat keeps consecutive key poses apart whatever the moves do.
        pose = dict(base, bend=0.06 * (i % 2))
        for contribution in (
            pulse(k, meter_beats, side, amp),
            move(k, meter_beats, side, amp * (1.15 if k == 0 else 1.0)),
        ):
            for name, value in contribution.items():
                pose[name] = pose.get(name, 0.0) + value
        for name, value in pose.items():
            lo, hi = _LIMITS.get(name, (-np.inf, np.inf))
            keys[i, _P[name]] = min(max(value, lo), hi)
    times = np.arange(int(round(duration_s * fps))) / fps
    seg = np.clip(np.searchsorted(keys_t, times, side="right") - 1, 0, keys_t.size - 2)
    u = (times - keys_t[seg]) / (keys_t[seg + 1] - keys_t[seg])
    ease = (0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0)))[:, None]
    params = keys[seg] + ease * (keys[seg + 1] - keys[seg])
    joints = np.stack([_pose_joints(p, home_x=home_x) for p in params]).astype(np.float32)
    if not with_depth:
        joints = joints[:, :, :2]
    return Motion(
        joints=np.ascontiguousarray(joints),
        fps=float(fps),
        confidence=np.ones(joints.shape[:2], np.float32),
        skeleton=COCO17.name,
        source=f"synth:{style}:{seed}",
    )
