"""Motion keypoints from files: Dance-with-Melody folders, AIST++ ``keypoints2d`` pickles, NPZ and CSV.

Every loader returns a :class:`Motion` in image axes: x to the right, y downwards (z, when present,
away from the viewer). A missing joint is NaN in ``joints`` with confidence 0; frames are never dropped.

Formats (:func:`load_keypoints` picks one from the path):

* **Dance-with-Melody folder** (``skeletons.json.gz`` + ``config.json`` + ``audio.mp3``): 23 3D joints
  at 25 fps in cm, layout ``dwm23``. The file stores joints relative to a per-frame ``center``; the
  centre is added back, because travelling across the floor is part of the dance and of its kinematic
  beats (the pose encoder re-centres on the hips itself). The file's y-up axes are rotated 180 degrees
  about x (y and z negated: a rotation, not a mirror) into image axes. See :func:`load_dwm_pair`.
* **AIST++ keypoints2d pickle** (``.pkl``): read by a restricted unpickler that only rebuilds numpy
  arrays; (9 cameras, T, 17, 3) -> one camera view, ``coco17``, confidence = third channel, fps from
  the microsecond ``timestamps``.
* **NPZ**: ``joints`` (T, J, 2|3) and ``fps`` (scalar), optional ``confidence`` (T, J) and
  ``skeleton`` (string). Without ``skeleton`` the layout is guessed from J (17 coco17, 33 mediapipe33,
  23 dwm23, 13 body13), else "generic".
* **CSV**: one row per (frame, joint)::

      # fps=30
      # skeleton=coco17
      frame,joint,x,y[,z][,confidence]
      0,0,312.5,140.2,0.98

  ``frame`` and ``joint`` are 0-based integers; pairs that do not appear are missing joints. The
  ``# fps=`` line may be replaced by the ``fps`` argument; ``# skeleton=`` is optional as for NPZ.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MediaError, ParameterError
from .limits import QueryLimits, npz_headers
from .numpy_pickle import load_numpy_pickle
from .skeletons import COMMON_BODY_SOURCES, SKELETONS, get_skeleton
from .types import Motion

DWM_FPS = 25.0
_FPS_RTOL = 0.01
_MAX_CSV_LINE_CHARS = 4096
_NPZ_KEYS = ("joints", "fps", "confidence", "skeleton")


@dataclass(frozen=True)
class DwmPair:
    """A Dance-with-Melody pair: motion frame ``i`` plays at song time ``music_start_s + i / motion.fps``."""

    motion: Motion
    audio_path: Path
    music_start_s: float


def load_keypoints(
    path: str | os.PathLike[str], *, fps: float | None = None, camera: int = 0, limits: QueryLimits | None = None
) -> Motion:
    """Motion from a keypoint file or Dance-with-Melody folder, detecting the format (see the module doc).

    ``fps`` is needed only for a CSV without a ``# fps=`` line; for formats that store their rate it
    must agree with it. ``camera`` picks the view of an AIST++ pickle (0-8). With ``limits``, a file that
    holds or declares more than ``limits.max_keypoint_values`` numbers (an .npz array header, a pickle's
    size or array shapes, CSV rows, JSON bytes) is refused with LimitError before its arrays are allocated.
    """
    path = Path(path)
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ParameterError(f"fps={fps} must be a positive frame rate in frames per second, or None.")
    if path.is_dir() or path.name == "skeletons.json.gz":
        folder = path if path.is_dir() else path.parent
        motion = load_dwm_pair(folder, limits=limits).motion
    elif not path.is_file():
        raise MediaError(f"{path}: no such keypoint file or folder.")
    else:
        suffix = path.suffix.lower()
        if suffix in (".pkl", ".pickle"):
            motion = _load_aist(path, camera=camera, limits=limits)
        elif suffix == ".npz":
            motion = _load_npz(path, fps=fps, limits=limits)
        elif suffix == ".csv":
            motion = _load_csv(path, fps=fps, limits=limits)
        else:
            raise MediaError(
                f"{path}: unknown keypoint format {suffix!r}. Expected a Dance-with-Melody folder, an AIST++ "
                ".pkl, an .npz with 'joints' and 'fps', or a .csv (see beatdance.media.keypoints)."
            )
    if fps is not None and abs(fps - motion.fps) > _FPS_RTOL * motion.fps:
        raise ParameterError(
            f"fps={fps} disagrees with the {motion.fps:g} fps stored in {path}. Leave fps=None for this file."
        )
    return motion


def load_dwm_pair(folder: str | os.PathLike[str], *, limits: QueryLimits | None = None) -> DwmPair:
    """A Dance-with-Melody folder as its motion (absolute positions, image axes) and its song alignment.

    With ``limits`` the skeleton JSON is inflated to at most 2 bytes per allowed value (a number and its comma).
    """
    folder = Path(folder)
    skel_path, config_path, audio_path = folder / "skeletons.json.gz", folder / "config.json", folder / "audio.mp3"
    for p in (skel_path, config_path):
        if not p.is_file():
            raise MediaError(
                f"{folder}: missing {p.name}. A Dance-with-Melody folder holds skeletons.json.gz, config.json "
                "and audio.mp3."
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        start = float(config["start_position"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MediaError(
            f"{config_path}: expected JSON with a numeric 'start_position' (25-fps frames): {exc}."
        ) from exc
    try:
        with gzip.open(skel_path, "rb") as fh:
            raw = fh.read() if limits is None else fh.read(2 * limits.max_keypoint_values + 1)
        if limits is not None and len(raw) > 2 * limits.max_keypoint_values:
            raise limits.exceeded(
                path=skel_path,
                limit="max_keypoint_values",
                remedy="Pass a shorter take",
                measured=f"the skeleton JSON inflates past {2 * limits.max_keypoint_values} bytes",
            )
        data = json.loads(raw)
        skeletons = np.asarray(data["skeletons"], dtype=np.float64)
        center = np.asarray(data["center"], dtype=np.float64)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise MediaError(
            f"{skel_path}: expected gzipped JSON with 'skeletons' [T][23][3] and 'center' [T][3]: {exc}."
        ) from exc
    if skeletons.ndim != 3 or skeletons.shape[1:] != (23, 3) or center.shape != (skeletons.shape[0], 3):
        raise MediaError(
            f"{skel_path}: 'skeletons' has shape {skeletons.shape} and 'center' {center.shape}; expected "
            "(T, 23, 3) and (T, 3)."
        )
    joints = skeletons + center[:, None, :]
    joints[..., 1:] *= -1.0  # y up -> y down, rotating about x so that left stays left
    motion = _checked_motion(skel_path, joints=joints, fps=DWM_FPS, confidence=None, skeleton="dwm23")
    return DwmPair(motion=motion, audio_path=audio_path, music_start_s=start / DWM_FPS)


def _load_aist(path: Path, *, camera: int, limits: QueryLimits | None) -> Motion:
    data = load_numpy_pickle(path, limits=limits)
    if not isinstance(data, dict) or "keypoints2d" not in data or "timestamps" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MediaError(f"{path}: found {keys}; expected an AIST++ dict with 'keypoints2d' and 'timestamps'.")
    kp = np.asarray(data["keypoints2d"])
    stamps = np.asarray(data["timestamps"], dtype=np.float64).ravel()
    if kp.ndim != 4 or kp.shape[2:] != (17, 3) or stamps.size != kp.shape[1]:
        raise MediaError(
            f"{path}: keypoints2d has shape {kp.shape} and {stamps.size} timestamps; expected (cameras, T, 17, 3) "
            "with T timestamps."
        )
    if not 0 <= camera < kp.shape[0]:
        raise ParameterError(
            f"camera={camera} is out of range for {path}, which has {kp.shape[0]} views (0..{kp.shape[0] - 1})."
        )
    if stamps.size < 2 or not np.all(np.diff(stamps) > 0):
        raise MediaError(f"{path}: timestamps {stamps[:3]}... are not increasing microseconds; cannot get the fps.")
    view = kp[camera].astype(np.float64)
    fps = 1e6 * (stamps.size - 1) / (stamps[-1] - stamps[0])
    return _checked_motion(path, joints=view[..., :2], fps=fps, confidence=view[..., 2], skeleton="coco17")


def _check_npz_headers(path: Path, *, limits: QueryLimits) -> None:
    """Refuse, from the ``.npy`` headers alone, arrays a motion cannot be made of or too many values in all."""
    headers = npz_headers(path, _NPZ_KEYS)
    for key, (shape, dtype) in headers.items():
        number = dtype.kind in "biuf"
        fits = {
            "joints": number and len(shape) == 3 and shape[2] in (2, 3),
            "confidence": number and len(shape) == 2,
            "fps": number and math.prod(shape) == 1,
            "skeleton": dtype.kind in "US" and math.prod(shape) == 1 and dtype.itemsize <= 1024,
        }[key]
        if not fits:
            raise MediaError(
                f"{path}: '{key}' is declared as {dtype} {shape}; expected numbers for 'joints' (T, J, 2|3), "
                "'confidence' (T, J) and 'fps' (a scalar), and a skeleton name for 'skeleton'."
            )
    shapes = ", ".join(f"'{k}' {shape}" for k, (shape, _) in headers.items())
    limits.check_values(
        path=path, what=f"the arrays {shapes} declare", values=sum(math.prod(shape) for shape, _ in headers.values())
    )


def _load_npz(path: Path, *, fps: float | None, limits: QueryLimits | None) -> Motion:
    if limits is not None:
        _check_npz_headers(path, limits=limits)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            keys = sorted(npz.files)
            data = {k: npz[k] for k in _NPZ_KEYS if k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise MediaError(
            f"{path}: not a readable .npz without pickled objects ({exc}). Re-save the keypoints "
            "with numpy.savez (joints, fps, optional confidence and skeleton)."
        ) from exc
    if "joints" not in data:
        raise MediaError(
            f"{path}: keys {keys}; expected 'joints' (T, J, 2|3), 'fps' and optional "
            "'confidence' (T, J) and 'skeleton'."
        )
    if "fps" in data:
        if data["fps"].size != 1:
            raise MediaError(f"{path}: 'fps' has shape {data['fps'].shape}; expected a scalar frame rate.")
        fps = float(data["fps"].ravel()[0])  # the stored rate wins; load_keypoints checks the argument against it
    if fps is None:
        raise MediaError(f"{path}: no 'fps' key. Save one with the joints, or pass load_keypoints(path, fps=...).")
    skeleton = str(data["skeleton"]) if "skeleton" in data else None
    return _checked_motion(path, joints=data["joints"], fps=fps, confidence=data.get("confidence"), skeleton=skeleton)


def _load_csv(path: Path, *, fps: float | None, limits: QueryLimits | None) -> Motion:
    meta: dict[str, str] = {}
    header: list[str] | None = None
    body: list[str] = []
    with open(path, encoding="utf-8") as fh:
        while line := fh.readline(_MAX_CSV_LINE_CHARS):
            if len(line) == _MAX_CSV_LINE_CHARS and not line.endswith("\n"):
                raise MediaError(
                    f"{path}: a line longer than {_MAX_CSV_LINE_CHARS} characters; expected keypoint rows."
                )
            text = line.strip()
            if text.startswith("#"):
                key, _, value = text[1:].partition("=")
                meta[key.strip().lower()] = value.strip()
            elif text and header is None:
                header = [h.strip().lower() for h in text.split(",")]
            elif text:
                body.append(text)
                if limits is not None and header is not None and len(body) * len(header) > limits.max_keypoint_values:
                    raise limits.exceeded(
                        path=path,
                        measured=f"the first {len(body)} rows hold {len(body) * len(header)} values",
                        limit="max_keypoint_values",
                        remedy="Pass a shorter take",
                    )
    expected = "frame,joint,x,y[,z][,confidence]"
    coords = [c for c in ("x", "y", "z") if header and c in header]
    if header is None or header[:2] != ["frame", "joint"] or coords not in (["x", "y"], ["x", "y", "z"]):
        raise MediaError(f"{path}: header {header}; expected the columns {expected} after '# key=value' lines.")
    if "fps" in meta:
        try:
            fps = float(meta["fps"])
        except ValueError:
            raise MediaError(f"{path}: '# fps={meta['fps']}' is not a number of frames per second.") from None
    if fps is None:
        raise MediaError(
            f"{path}: no '# fps=...' line. Add one above the header or pass load_keypoints(path, fps=...)."
        )
    try:
        table = np.loadtxt(io.StringIO("\n".join(body)), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise MediaError(f"{path}: rows are not {len(header)} numbers separated by commas ({exc}).") from exc
    if table.shape[0] == 0 or table.shape[1] != len(header):
        raise MediaError(f"{path}: {table.shape[0]} data rows of {table.shape[1]} values; expected rows of {expected}.")
    index = table[:, :2]
    if np.any(index < 0) or np.any(index != np.round(index)):
        raise MediaError(f"{path}: 'frame' and 'joint' must be non-negative integers.")
    if limits is not None:
        frames_n, joints_n = index.max(axis=0) + 1
        limits.check_values(
            path=path,
            values=int(frames_n * joints_n * len(coords)),
            what=f"{frames_n:.0f} frames × {joints_n:.0f} joints × {len(coords)} coordinates make",
        )
    frame, joint = index.astype(np.int64).T
    joints = np.full((frame.max() + 1, joint.max() + 1, len(coords)), np.nan)
    joints[frame, joint] = table[:, [header.index(c) for c in coords]]
    confidence = None
    if "confidence" in header:
        confidence = np.zeros(joints.shape[:2])
        confidence[frame, joint] = table[:, header.index("confidence")]
    return _checked_motion(path, joints=joints, fps=fps, confidence=confidence, skeleton=meta.get("skeleton"))


def _checked_motion(
    path: Path, *, joints: np.ndarray, fps: float, confidence: np.ndarray | None, skeleton: str | None
) -> Motion:
    """Validate loaded arrays and wrap them in a Motion (NaN joints get confidence 0)."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[2] not in (2, 3) or joints.shape[0] < 1 or joints.shape[1] < 1:
        raise MediaError(f"{path}: joints have shape {joints.shape}; expected (frames, joints, 2 or 3).")
    if not (np.isfinite(fps) and fps > 0):
        raise MediaError(f"{path}: fps={fps}; expected a positive frame rate.")
    missing = ~np.all(np.isfinite(joints), axis=2)
    if missing.all():
        raise MediaError(f"{path}: every keypoint is NaN or infinite; there is no motion in the file.")
    joints[missing] = np.nan
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
        if confidence.shape != joints.shape[:2]:
            raise MediaError(
                f"{path}: confidence has shape {confidence.shape}; expected (frames, joints) = {joints.shape[:2]}."
            )
        confidence = np.where(missing | ~np.isfinite(confidence), 0.0, np.clip(confidence, 0.0, 1.0)).astype(np.float32)
    elif missing.any():
        confidence = (~missing).astype(np.float32)
    num = joints.shape[1]
    if skeleton is None:
        skeleton = next((s.name for s in SKELETONS.values() if s.num_joints == num), "generic")
    elif skeleton != "generic":
        try:
            layout = get_skeleton(skeleton)
        except ParameterError as exc:
            raise MediaError(f"{path}: {exc}") from None
        if layout.num_joints != num:
            raise MediaError(f"{path}: skeleton {skeleton!r} has {layout.num_joints} joints but the data has {num}.")
    return Motion(joints=joints, fps=float(fps), confidence=confidence, skeleton=skeleton, source=str(path))


def to_common_body(motion: Motion) -> Motion:
    """``motion`` on the ``body13`` layout (head, shoulders, elbows, wrists, hips, knees, ankles).

    Joints made of several source points are their mean, with the lowest of their confidences.
    """
    if motion.skeleton not in COMMON_BODY_SOURCES:
        raise ParameterError(
            f"Motion skeleton {motion.skeleton!r} has no mapping to the common body layout. Expected one of "
            f"{sorted(COMMON_BODY_SOURCES)}; load the keypoints with a known skeleton or add a mapping to "
            "beatdance.media.skeletons.COMMON_BODY_SOURCES."
        )
    sources = COMMON_BODY_SOURCES[motion.skeleton]
    joints = np.stack([motion.joints[:, list(src)].mean(axis=1) for src in sources], axis=1)
    conf = None
    if motion.confidence is not None:
        conf = np.stack([motion.confidence[:, list(src)].min(axis=1) for src in sources], axis=1)
    return Motion(joints=joints, fps=motion.fps, confidence=conf, skeleton="body13", source=motion.source)


def interpolate_missing(motion: Motion, *, confidence_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Joints (float64) with missing points filled in, and the (T, J) mask of the points observed.

    A point is missing when it is NaN or its confidence is below ``confidence_threshold``. Each joint is
    linearly interpolated over time between its observed frames and held constant before the first and
    after the last; a joint never observed stays NaN.
    """
    joints = np.array(motion.joints, dtype=np.float64)
    valid = np.all(np.isfinite(joints), axis=2)
    if motion.confidence is not None:
        valid &= motion.confidence >= confidence_threshold
    frames = np.arange(joints.shape[0])
    seen = valid.any(axis=0)
    for j in np.flatnonzero(seen & ~valid.all(axis=0)):
        ok = valid[:, j]
        for c in range(joints.shape[2]):
            joints[:, j, c] = np.interp(frames, frames[ok], joints[ok, j, c])
    joints[:, ~seen] = np.nan
    return joints, valid


def body_scale(joints: np.ndarray, *, skeleton: str) -> float:
    """The body's size in the units of ``joints`` (T, J, C): the median torso length (shoulder to hip midpoints).

    Layouts without known shoulders and hips (and degenerate torsos) use the median RMS distance of
    the joints seen in every frame from their centroid instead; a motion with no extent at all gives 1.
    """
    if skeleton in SKELETONS:
        layout = get_skeleton(skeleton)
        shoulders, hips = joints[:, list(layout.shoulders)].mean(axis=1), joints[:, list(layout.hips)].mean(axis=1)
        torso = np.linalg.norm(shoulders - hips, axis=1)
        torso = torso[np.isfinite(torso)]
        if torso.size and np.median(torso) > 0:
            return float(np.median(torso))
    joints = joints[:, np.all(np.isfinite(joints), axis=(0, 2))]
    if joints.shape[1] == 0:
        return 1.0
    centred = joints - joints.mean(axis=1, keepdims=True)
    spread = float(np.median(np.sqrt(np.mean(np.sum(centred**2, axis=2), axis=1))))
    return spread if spread > 0 else 1.0
