"""FSSOD's 11 classes: ids, names and mask colours (also in fssod/classes.json).

Every module that names a class takes it from here: the dataset decodes masks with these colours
(data.py), the synthetic scenes draw these ids (stand_ins/synthetic.py), evaluation scores and the figures
name them (evaluate.py, figures.py), and predicted masks carry these ids (predict.py; figures.py's
display palette draws them, since this one gives a team and its goalkeeper the same yellow).
"""
from typing import NamedTuple

import numpy as np


class FSSODClass(NamedTuple):
    id: int
    name: str
    rgb: tuple[int, int, int]


# Team A and Goalkeeper A, and Team B and Goalkeeper B, differ by only a few colour units in the masks,
# so masks are decoded by exact colour match, never by nearest colour.
CLASSES: tuple[FSSODClass, ...] = (
    FSSODClass(0, "Goal Bar", (255, 0, 29)),
    FSSODClass(1, "Referee", (238, 171, 171)),
    FSSODClass(2, "Advertisement", (27, 71, 151)),
    FSSODClass(3, "Ground", (137, 126, 126)),
    FSSODClass(4, "Ball", (201, 19, 223)),
    FSSODClass(5, "Coaches & Officials", (0, 0, 0)),
    FSSODClass(6, "Audience", (111, 48, 253)),
    FSSODClass(7, "Goalkeeper A", (255, 235, 0)),
    FSSODClass(8, "Goalkeeper B", (255, 159, 0)),
    FSSODClass(9, "Team A", (254, 233, 3)),
    FSSODClass(10, "Team B", (255, 160, 1)),
)
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255  # unlabelled pixels, never scored
CLASS_NAMES: list[str] = [c.name for c in CLASSES]
PALETTE: np.ndarray = np.array([c.rgb for c in CLASSES], dtype=np.uint8)

GOAL_BAR, REFEREE, ADVERTISEMENT, GROUND, BALL, OFFICIALS, AUDIENCE = 0, 1, 2, 3, 4, 5, 6
GOALKEEPER_A, GOALKEEPER_B, TEAM_A, TEAM_B = 7, 8, 9, 10
