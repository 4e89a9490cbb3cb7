"""Drawing a synthetic dance as a person-like figure and writing it as an MP4 with its music.

The figure is drawn so that MediaPipe Pose takes it for a person: a filled skin-toned head with hair,
eyes, eyebrows, nose and mouth, a neck, a shirt-coloured torso and sleeves, skin-coloured forearms and
hands, trousers and shoes, every part with a darker outline, on a plain background with a floor.
Clothing, skin, hair and background colours are drawn from the seed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import ParameterError
from ..media.skeletons import COCO17
from ..media.types import Motion
from ..util import atomic_write_bytes

if TYPE_CHECKING:
    from .media import SynthPair

# Colours are RGB.
_SKIN = ((241, 194, 167), (224, 172, 138), (198, 134, 96), (161, 102, 70), (120, 76, 50), (255, 219, 190))
_HAIR = ((35, 25, 20), (80, 50, 30), (150, 100, 50), (20, 20, 20), (200, 160, 90))
_SHIRT = ((200, 40, 45), (40, 90, 180), (30, 140, 80), (230, 150, 30), (120, 60, 150), (240, 240, 235), (30, 30, 35))
_TROUSERS = ((35, 45, 80), (40, 40, 45), (90, 75, 60), (60, 80, 110), (20, 20, 25))
_BACKGROUND = ((225, 228, 232), (236, 230, 218), (210, 225, 235), (230, 236, 226), (200, 200, 205))

# Part widths as fractions of the frame height (the figure is about 0.65 of it).
_W_THIGH = 0.052
_W_SHIN = 0.042
_W_UPPER_ARM = 0.040
_W_FOREARM = 0.032
_W_NECK = 0.034
_HEAD_RX = 0.050
_HEAD_RY = 0.062


@dataclass(frozen=True)
class FigureLook:
    """The colours of one dancer and their background (RGB)."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    background: tuple[int, int, int]

    @classmethod
    def from_seed(cls, seed: int) -> FigureLook:
        rng = np.random.default_rng([seed, 7])

        def pick(options: tuple[tuple[int, int, int], ...]) -> tuple[int, int, int]:
            return options[int(rng.integers(len(options)))]

        return cls(
            skin=pick(_SKIN),
            hair=pick(_HAIR),
            shirt=pick(_SHIRT),
            trousers=pick(_TROUSERS),
            background=pick(_BACKGROUND),
        )


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)  # type: ignore[return-value]


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _limb(img: np.ndarray, a: np.ndarray, b: np.ndarray, *, width_px: float, colour: tuple[int, int, int]) -> None:
    """A rounded thick segment with a darker outline."""
    w = max(2, int(round(width_px)))
    cv2.line(img, _pt(a), _pt(b), _shade(colour, 0.6), w + 3, cv2.LINE_AA)
    cv2.line(img, _pt(a), _pt(b), colour, w, cv2.LINE_AA)


def _blob(
    img: np.ndarray,
    c: np.ndarray,
    *,
    axes_px: tuple[float, float],
    angle_deg: float,
    colour: tuple[int, int, int],
    outline: bool = True,
) -> None:
    axes = (max(1, int(round(axes_px[0]))), max(1, int(round(axes_px[1]))))
    if outline:
        cv2.ellipse(img, _pt(c), (axes[0] + 1, axes[1] + 1), angle_deg, 0, 360, _shade(colour, 0.6), -1, cv2.LINE_AA)
    cv2.ellipse(img, _pt(c), axes, angle_deg, 0, 360, colour, -1, cv2.LINE_AA)


def draw_figure(img: np.ndarray, joints_px: np.ndarray, *, look: FigureLook, scale_px: float) -> None:
    """Draw one ``coco17`` pose (pixel coordinates, (17, 2+)) onto the RGB image ``img`` in place.

    ``scale_px`` is the frame height the proportions refer to (the stage unit in pixels).
    """
    j = joints_px[:, :2].astype(np.float64)
    s = scale_px
    shoulders_c = (j[5] + j[6]) / 2
    hips_c = (j[11] + j[12]) / 2
    up = shoulders_c - hips_c
    up /= max(np.linalg.norm(up), 1e-6)
    across = np.array([-up[1], up[0]])  # towards the dancer's left (image right when facing the camera)
    frame = _BodyFrame(up=up, across=across, shoulders_c=shoulders_c, hips_c=hips_c)
    _draw_legs(img, j, frame, look, s)
    _draw_torso(img, j, frame, look, s)
    tilt = _draw_head(img, j, frame, look, s)
    _draw_face(img, j, frame, look, s, tilt)
    _draw_arms(img, j, frame, look, s)


@dataclass
class _BodyFrame:
    """The figure's own axes in the image: ``up`` (hips to shoulders) and ``across`` (towards its left)."""

    up: np.ndarray
    across: np.ndarray
    shoulders_c: np.ndarray
    hips_c: np.ndarray


def _draw_legs(img: np.ndarray, j: np.ndarray, frame: _BodyFrame, look: FigureLook, s: float) -> None:
    """Legs and shoes."""
    hips_c = frame.hips_c
    for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
        _limb(img, j[hip], j[knee], width_px=_W_THIGH * s, colour=look.trousers)
        _limb(img, j[knee], j[ankle], width_px=_W_SHIN * s, colour=look.trousers)
        toe = j[ankle] + np.array([np.sign(j[ankle][0] - hips_c[0]) * 0.018 * s, 0.012 * s])
        _blob(img, (j[ankle] + toe) / 2, axes_px=(0.032 * s, 0.016 * s), angle_deg=0.0, colour=(45, 35, 30))


def _draw_torso(img: np.ndarray, j: np.ndarray, frame: _BodyFrame, look: FigureLook, s: float) -> None:
    """Torso: a shirt polygon a little wider than the joints, trousers around the hips."""
    up, across = frame.up, frame.across
    sw = 0.018 * s
    hip_pad = 0.012 * s
    torso = np.array(
        [
            j[5] + across * sw - up * 0.004 * s,
            j[6] - across * sw - up * 0.004 * s,
            j[12] - across * hip_pad,
            j[11] + across * hip_pad,
        ]
    )
    cv2.fillConvexPoly(img, np.round(torso).astype(np.int32), look.shirt, cv2.LINE_AA)
    cv2.polylines(img, [np.round(torso).astype(np.int32)], True, _shade(look.shirt, 0.6), 2, cv2.LINE_AA)
    waist = np.array(
        [
            j[11] + across * hip_pad + up * 0.03 * s,
            j[12] - across * hip_pad + up * 0.03 * s,
            j[12] - across * hip_pad - up * 0.02 * s,
            j[11] + across * hip_pad - up * 0.02 * s,
        ]
    )
    cv2.fillConvexPoly(img, np.round(waist).astype(np.int32), look.trousers, cv2.LINE_AA)


def _draw_head(img: np.ndarray, j: np.ndarray, frame: _BodyFrame, look: FigureLook, s: float) -> float:
    """Head, centred above the nose between the ears, with neck, hair and ears; returns its tilt in degrees."""
    up, across, shoulders_c = frame.up, frame.across, frame.shoulders_c
    ears_c = (j[3] + j[4]) / 2
    head_c = ears_c + up * 0.012 * s
    neck_top = head_c - up * 0.03 * s
    _limb(img, shoulders_c, neck_top, width_px=_W_NECK * s, colour=look.skin)
    tilt = float(np.degrees(np.arctan2(across[1], across[0])))
    turn = float(np.clip(np.linalg.norm(j[3] - j[4]) / (0.096 * s), 0.6, 1.0))
    _blob(
        img,
        head_c + up * 0.012 * s,
        axes_px=(_HEAD_RX * s * 1.04, _HEAD_RY * s * 1.02),
        angle_deg=tilt,
        colour=look.hair,
    )
    _blob(
        img,
        head_c - up * 0.004 * s,
        axes_px=(_HEAD_RX * s * (0.55 + 0.45 * turn), _HEAD_RY * s * 0.93),
        angle_deg=tilt,
        colour=look.skin,
    )
    hairline = head_c + up * 0.035 * s
    _blob(
        img,
        hairline,
        axes_px=(_HEAD_RX * s * 0.95 * (0.55 + 0.45 * turn), 0.022 * s),
        angle_deg=tilt,
        colour=look.hair,
        outline=False,
    )
    for ear in (j[3], j[4]):
        _blob(img, ear - up * 0.004 * s, axes_px=(0.009 * s, 0.015 * s), angle_deg=tilt, colour=look.skin)
    return tilt


def _draw_face(img: np.ndarray, j: np.ndarray, frame: _BodyFrame, look: FigureLook, s: float, tilt: float) -> None:
    """Eyes, brows, nose and mouth, tilted with the head."""
    up, across = frame.up, frame.across
    for eye in (j[1], j[2]):
        _blob(img, eye, axes_px=(0.011 * s, 0.0065 * s), angle_deg=tilt, colour=(250, 250, 250), outline=False)
        cv2.circle(img, _pt(eye), max(1, int(round(0.0055 * s))), (40, 30, 25), -1, cv2.LINE_AA)
        brow = eye + up * 0.014 * s
        cv2.line(
            img,
            _pt(brow - across * 0.011 * s),
            _pt(brow + across * 0.011 * s),
            _shade(look.hair, 0.8),
            max(1, int(round(0.005 * s))),
            cv2.LINE_AA,
        )
    nose = j[0]
    cv2.line(
        img, _pt(nose + up * 0.012 * s), _pt(nose), _shade(look.skin, 0.75), max(1, int(round(0.005 * s))), cv2.LINE_AA
    )
    mouth = nose - up * 0.022 * s
    cv2.ellipse(
        img,
        _pt(mouth),
        (max(1, int(round(0.013 * s))), max(1, int(round(0.006 * s)))),
        tilt,
        0,
        180,
        (150, 60, 60),
        max(1, int(round(0.004 * s))),
        cv2.LINE_AA,
    )


def _draw_arms(img: np.ndarray, j: np.ndarray, frame: _BodyFrame, look: FigureLook, s: float) -> None:
    """Arms in front of the torso: sleeves, forearms, hands."""
    for shoulder, elbow, wrist in ((5, 7, 9), (6, 8, 10)):
        _limb(img, j[shoulder], j[elbow], width_px=_W_UPPER_ARM * s, colour=look.shirt)
        _limb(img, j[elbow], j[wrist], width_px=_W_FOREARM * s, colour=look.skin)
        hand = j[wrist] + (j[wrist] - j[elbow]) * 0.18
        _blob(img, hand, axes_px=(0.018 * s, 0.022 * s), angle_deg=0.0, colour=look.skin)


def stage_to_pixels(joints: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Stage coordinates (square, unit = frame height, centred horizontally) to pixel coordinates."""
    px = np.array(joints[..., :2], dtype=np.float64)
    px[..., 0] = (px[..., 0] - 0.5) * height + width / 2
    px[..., 1] = px[..., 1] * height
    return px


def _resample(motion: Motion, *, fps: float, num_frames: int) -> np.ndarray:
    """Joints at ``num_frames`` frames of rate ``fps``, linearly interpolated in time."""
    src_t = np.arange(motion.num_frames) / motion.fps
    dst_t = np.arange(num_frames) / fps
    flat = motion.joints.reshape(motion.num_frames, -1)
    out = np.stack([np.interp(dst_t, src_t, flat[:, i]) for i in range(flat.shape[1])], axis=1)
    return out.reshape(num_frames, *motion.joints.shape[1:])


def render_frames(*, motion: Motion, fps: float, width: int, height: int, look: FigureLook) -> np.ndarray:
    """(T, height, width, 3) uint8 RGB frames of ``motion`` (a ``coco17`` stage-frame Motion) at ``fps``."""
    if motion.skeleton != COCO17.name:
        raise ParameterError(
            f"motion.skeleton={motion.skeleton!r}; the renderer draws 'coco17' motions from synthesize_motion."
        )
    if width < 64 or height < 64:
        raise ParameterError(f"width={width}, height={height}: frames must be at least 64 x 64 pixels, e.g. 320 x 320.")
    if not fps > 0:
        raise ParameterError(f"fps={fps} must be strictly positive, e.g. fps=25.")
    num_frames = int(round(motion.duration_s * fps))
    joints = _resample(motion, fps=fps, num_frames=num_frames) if fps != motion.fps else motion.joints
    px = stage_to_pixels(joints, width=width, height=height)
    background = np.empty((height, width, 3), dtype=np.uint8)
    background[:] = look.background
    floor = int(round(0.86 * height))
    background[floor:] = _shade(look.background, 0.85)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        img = background.copy()
        feet_y = float(max(px[t, 15, 1], px[t, 16, 1]))
        cv2.ellipse(
            img,
            (int(round(px[t, 11:13, 0].mean())), int(round(feet_y + 0.012 * height))),
            (int(0.09 * height), int(0.015 * height)),
            0,
            0,
            360,
            _shade(look.background, 0.7),
            -1,
            cv2.LINE_AA,
        )
        draw_figure(img, px[t], look=look, scale_px=float(height))
        frames[t] = img
    return frames


def encode_mp4(*, frames: np.ndarray, fps: float, audio: np.ndarray | None, sr: int | None) -> bytes:
    """H.264 (yuv420p) video plus, when given, mono AAC audio, as the bytes of an MP4 file."""
    import av

    buf = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "20", "preset": "veryfast"}
        as_ = out.add_stream("aac", rate=sr, layout="mono") if audio is not None else None
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, 1 / rate
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if as_ is not None:
            assert sr is not None
            step = 1024
            mono = np.ascontiguousarray(audio, dtype=np.float32)[None]
            for i in range(0, mono.shape[1], step):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(mono[:, i : i + step]), format="fltp", layout="mono"
                )
                af.sample_rate, af.pts, af.time_base = sr, i, Fraction(1, sr)
                out.mux(as_.encode(af))
            out.mux(as_.encode(None))
    return buf.getvalue()


def render_video(
    *, pair: SynthPair, path: str | os.PathLike[str], fps: float = 25, width: int = 320, height: int = 320
) -> None:
    """Write ``pair`` as an MP4 at ``path``: the dancing figure (H.264) with the music (AAC), atomically."""
    look = FigureLook.from_seed(pair.seed)
    frames = render_frames(motion=pair.motion, fps=fps, width=width, height=height, look=look)
    atomic_write_bytes(path, encode_mp4(frames=frames, fps=fps, audio=pair.music.audio, sr=pair.music.sr))
