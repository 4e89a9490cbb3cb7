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
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    bones=(
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (5, 6),
        (5, 7),
        (7, 9),
        (6, 8),
        (8, 10),
        (5, 11),
        (6, 12),
        (11, 12),
        (11, 13),
        (13, 15),
        (12, 14),
        (14, 16),
    ),
    shoulders=(5, 6),
    hips=(11, 12),
)

MEDIAPIPE33 = Skeleton(
    name="mediapipe33",
    joints=(
        "nose",
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
        "left_ear",
        "right_ear",
        "mouth_left",
        "mouth_right",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_pinky",
        "right_pinky",
        "left_index",
        "right_index",
        "left_thumb",
        "right_thumb",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "left_heel",
        "right_heel",
        "left_foot_index",
        "right_foot_index",
    ),
    bones=(
        (11, 12),
        (11, 13),
        (13, 15),
        (12, 14),
        (14, 16),
        (15, 17),
        (15, 19),
        (16, 18),
        (16, 20),
        (11, 23),
        (12, 24),
        (23, 24),
        (23, 25),
        (25, 27),
        (27, 29),
        (27, 31),
        (24, 26),
        (26, 28),
        (28, 30),
        (28, 32),
        (0, 2),
        (0, 5),
        (2, 7),
        (5, 8),
        (9, 10),
    ),
    shoulders=(11, 12),
    hips=(23, 24),
)

# MediaPipe landmark index for each COCO-17 joint, to compare or convert the two layouts.
MEDIAPIPE_TO_COCO17: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# Dance-with-Melody motion capture (23 points, y up in the file). Sides were identified on the data: the
# horizontal hip axis 7 -> 16 points along up x (heel -> toe), i.e. to the dancer's left, and the raised
# arm of the ballroom hold is 12-15 (the lead's left). 5 and 14 sit on the forearm, 6 and 15 are the
# wrists, 21 and 22 the hand-direction points; 2 is the lower spine. The visualiser's midpoint bones
# (mid(0,1), mid(3,12), mid(9..)) are drawn here to the nearest real joint.
DWM23 = Skeleton(
    name="dwm23",
    joints=(
        "head_right",
        "head_left",
        "spine",
        "right_shoulder",
        "right_elbow",
        "right_forearm",
        "right_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "right_foot",
        "right_toe",
        "left_shoulder",
        "left_elbow",
        "left_forearm",
        "left_wrist",
        "left_hip",
        "left_knee",
        "left_ankle",
        "left_foot",
        "left_toe",
        "left_hand",
        "right_hand",
    ),
    bones=(
        (0, 1),
        (0, 3),
        (1, 12),
        (2, 3),
        (2, 12),
        (3, 4),
        (4, 5),
        (5, 6),
        (6, 22),
        (12, 13),
        (13, 14),
        (14, 15),
        (15, 21),
        (2, 7),
        (7, 8),
        (8, 9),
        (9, 10),
        (10, 11),
        (2, 16),
        (16, 17),
        (17, 18),
        (18, 19),
        (19, 20),
    ),
    shoulders=(12, 3),
    hips=(16, 7),
)

# The common body layout every joint layout maps onto (pose features, kinematic beats across sources).
BODY13 = Skeleton(
    name="body13",
    joints=(
        "head",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    bones=(
        (0, 1),
        (0, 2),
        (1, 2),
        (1, 3),
        (3, 5),
        (2, 4),
        (4, 6),
        (1, 7),
        (2, 8),
        (7, 8),
        (7, 9),
        (9, 11),
        (8, 10),
        (10, 12),
    ),
    shoulders=(1, 2),
    hips=(7, 8),
)

# For each layout, the source joints averaged into each BODY13 joint ("head" is the nose in the 2D
# layouts and the middle of the two head points in dwm23).
COMMON_BODY_SOURCES: dict[str, tuple[tuple[int, ...], ...]] = {
    "body13": tuple((i,) for i in range(13)),
    "coco17": ((0,), (5,), (6,), (7,), (8,), (9,), (10,), (11,), (12,), (13,), (14,), (15,), (16,)),
    "mediapipe33": ((0,), (11,), (12,), (13,), (14,), (15,), (16,), (23,), (24,), (25,), (26,), (27,), (28,)),
    "dwm23": ((0, 1), (12,), (3,), (13,), (4,), (15,), (6,), (16,), (7,), (17,), (8,), (18,), (9,)),
}

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MEDIAPIPE33, DWM23, BODY13)}


def get_skeleton(name: str) -> Skeleton:
    """The registered skeleton called ``name``."""
    if name not in SKELETONS:
        raise ParameterError(f"Unknown skeleton {name!r}. Expected one of {sorted(SKELETONS)}.")
    return SKELETONS[name]


def register_skeleton(skeleton: Skeleton) -> None:
    """Make ``skeleton`` available to :func:`get_skeleton`."""
    SKELETONS[skeleton.name] = skeleton
