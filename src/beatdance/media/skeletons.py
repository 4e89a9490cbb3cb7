"""Joint layouts: names, bones (for drawing) and the joints used to normalise body scale."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError


@dataclass(frozen=True)
class Skeleton:
    """A named joint layout.

    ``bones`` are index pairs for drawing. ``shoulders`` and ``hips`` are (left, right) index pairs;
    their midpoints define the body centre and the torso length used for scale normalisation.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    shoulders: tuple[int, int]
    hips: tuple[int, int]

    @property
    def num_joints(self) -> int:
        return len(self.joints)


COCO17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    bones=(
        (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
        (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    ),
    shoulders=(5, 6),
    hips=(11, 12),
)

MEDIAPIPE33 = Skeleton(
    name="mediapipe33",
    joints=(
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
        "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ),
    bones=(
        (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (15, 17), (15, 19), (16, 18), (16, 20),
        (11, 23), (12, 24), (23, 24), (23, 25), (25, 27), (27, 29), (27, 31), (24, 26), (26, 28),
        (28, 30), (28, 32), (0, 2), (0, 5), (2, 7), (5, 8), (9, 10),
    ),
    shoulders=(11, 12),
    hips=(23, 24),
)

# MediaPipe landmark index for each COCO-17 joint, to compare or convert the two layouts.
MEDIAPIPE_TO_COCO17: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MEDIAPIPE33)}


def get_skeleton(name: str) -> Skeleton:
    """The registered skeleton called ``name``."""
    if name not in SKELETONS:
        raise ParameterError(f"Unknown skeleton {name!r}. Expected one of {sorted(SKELETONS)}.")
    return SKELETONS[name]


def register_skeleton(skeleton: Skeleton) -> None:
    """Make ``skeleton`` available to :func:`get_skeleton`."""
    SKELETONS[skeleton.name] = skeleton
