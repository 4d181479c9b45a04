"""Synthetic football scenes: the built-in, no-download default and the test frames.

`make_scene` draws a broadcast-like frame (audience, advertising boards, a striped pitch with white
lines, two teams, goalkeepers, a referee, officials, the ball and sometimes a goal) together with the
exact label map of what it drew, in FSSOD's 11 class ids. `SyntheticScenes` serves such frames in the
same item format as `data.FSSOD`, so that everything runs, and is tested, without the dataset.
"""
import numpy as np
import torch

from classes import (ADVERTISEMENT, AUDIENCE, BALL, GOAL_BAR, GOALKEEPER_A, GOALKEEPER_B, GROUND, OFFICIALS,
                     REFEREE, TEAM_A, TEAM_B)

SCENE_SIZE = (416, 608)  # FSSOD's frame size after the paper's resize (H, W)

# Kits: (shirt, shorts, socks). Teams and goalkeepers draw from separate lists so that a frame's
# four kits differ, and from few colours so that the clusters are learnable across frames.
TEAM_KITS = (
    ((235, 235, 240), (235, 235, 240), (240, 240, 240)),
    ((200, 30, 40), (245, 245, 245), (20, 20, 20)),
    ((30, 60, 170), (30, 40, 110), (30, 60, 170)),
    ((120, 190, 235), (245, 245, 245), (30, 30, 60)),
    ((250, 215, 40), (30, 70, 160), (250, 215, 40)),
    ((25, 25, 30), (25, 25, 30), (200, 30, 40)),
)
GOALKEEPER_KITS = (
    ((170, 230, 40), (20, 20, 20), (170, 230, 40)),
    ((230, 90, 170), (230, 90, 170), (230, 90, 170)),
    ((120, 60, 170), (40, 30, 70), (120, 60, 170)),
    ((250, 140, 30), (40, 40, 40), (250, 140, 30)),
    ((110, 110, 115), (60, 60, 65), (110, 110, 115)),
)
REFEREE_KITS = (
    ((20, 20, 20), (20, 20, 20), (20, 20, 20)),
    ((235, 235, 60), (20, 20, 20), (20, 20, 20)),
)
OFFICIAL_CLOTHES = ((35, 35, 45), (70, 70, 80), (20, 30, 70))
SKIN_TONES = ((235, 190, 160), (200, 150, 110), (140, 95, 65), (95, 60, 40))
BOARD_COLOURS = ((20, 40, 140), (200, 20, 30), (240, 240, 240), (20, 20, 20), (250, 200, 0), (0, 130, 200),
                 (120, 20, 120))
PITCH_GREENS = ((45, 125, 45), (60, 140, 50), (40, 110, 55))
LINE_WHITE = (238, 240, 236)


def _rect(image: np.ndarray, label: np.ndarray, y0: float, y1: float, x0: float, x1: float, colour,
          class_id: int) -> None:
    """Fill the box [y0, y1) x [x0, x1), at least one pixel wide, clipped to the frame."""
    height, width = label.shape
    top, left = int(round(y0)), int(round(x0))
    bottom, right = max(int(round(y1)), top + 1), max(int(round(x1)), left + 1)
    top, bottom, left, right = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if bottom > top and right > left:
        image[top:bottom, left:right] = colour
        label[top:bottom, left:right] = class_id


def _ellipse(image: np.ndarray, label: np.ndarray, cy: float, cx: float, ry: float, rx: float, colour,
             class_id: int) -> None:
    """Fill the ellipse with centre (cy, cx) and radii (ry, rx), evaluated only in its bounding box."""
    height, width = label.shape
    ry, rx = max(ry, 0.5), max(rx, 0.5)
    top, bottom = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, height)
    left, right = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, width)
    if bottom <= top or right <= left:
        return
    yy, xx = np.ogrid[top:bottom, left:right]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    image[top:bottom, left:right][inside] = colour
    label[top:bottom, left:right][inside] = class_id


def _person(image, label, foot_y: float, foot_x: float, height: float, kit, skin, class_id: int,
            stride: float) -> None:
    """A standing figure whose feet are at (foot_y, foot_x): legs, shorts, shirt with arms, head."""
    shirt, shorts, socks = kit
    h = height
    for side in (-1, 1):
        leg_x = foot_x + side * (0.06 + stride) * h
        _rect(image, label, foot_y - 0.45 * h, foot_y - 0.22 * h, leg_x - 0.045 * h, leg_x + 0.045 * h, skin,
              class_id)
        _rect(image, label, foot_y - 0.22 * h, foot_y, leg_x - 0.045 * h, leg_x + 0.045 * h, socks, class_id)
    _rect(image, label, foot_y - 0.56 * h, foot_y - 0.40 * h, foot_x - 0.14 * h, foot_x + 0.14 * h, shorts,
          class_id)
    _rect(image, label, foot_y - 0.84 * h, foot_y - 0.54 * h, foot_x - 0.15 * h, foot_x + 0.15 * h, shirt,
          class_id)
    for side in (-1, 1):
        arm_x = foot_x + side * 0.19 * h
        _rect(image, label, foot_y - 0.82 * h, foot_y - 0.66 * h, arm_x - 0.04 * h, arm_x + 0.04 * h, shirt,
              class_id)
        _rect(image, label, foot_y - 0.66 * h, foot_y - 0.55 * h, arm_x - 0.035 * h, arm_x + 0.035 * h, skin,
              class_id)
    _ellipse(image, label, foot_y - 0.92 * h, foot_x, 0.08 * h, 0.065 * h, skin, class_id)


def _goal(image, label, foot_y: float, left_x: float, height: float, width: float) -> None:
    """Goal frame seen from the side of the pitch: two posts and the crossbar (Goal Bar, id 0)."""
    post = max(1.0, height / 22)
    _rect(image, label, foot_y - height, foot_y, left_x, left_x + post, LINE_WHITE, GOAL_BAR)
    _rect(image, label, foot_y - height, foot_y, left_x + width - post, left_x + width, LINE_WHITE, GOAL_BAR)
    _rect(image, label, foot_y - height, foot_y - height + post, left_x, left_x + width, LINE_WHITE, GOAL_BAR)


def make_scene(seed: int, size: tuple[int, int] = SCENE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Draw a broadcast-like football frame and its exact label map.

    Returns image: (H, W, 3) uint8 and label: (H, W) int64 ids in 0..10 (FSSOD's ids). Top to
    bottom: audience, advertising boards, pitch with white lines (lines are Ground, as in FSSOD);
    people, the ball and sometimes a goal stand on the pitch, drawn far to near so nearer objects
    occlude farther ones and the label map is exactly what is visible. Deterministic in seed.
    """
    height, width = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), dtype=np.float32)
    label = np.full((height, width), GROUND, dtype=np.int64)

    horizon = int(height * rng.uniform(0.18, 0.42))
    board_top = max(1, horizon - max(2, int(height * rng.uniform(0.04, 0.09))))

    cell = max(2, height // 70)
    crowd = rng.uniform(30, 200, size=(board_top // cell + 1, width // cell + 1, 3)).astype(np.float32)
    rows, cols = np.arange(board_top) // cell, np.arange(width) // cell
    fade = np.linspace(0.6, 1.0, board_top, dtype=np.float32)[:, None, None]
    image[:board_top] = crowd[rows][:, cols] * fade
    label[:board_top] = AUDIENCE

    board_height = horizon - board_top
    x = 0
    while x < width:
        panel = int(rng.uniform(0.12, 0.35) * width)
        colour = BOARD_COLOURS[rng.integers(len(BOARD_COLOURS))]
        text = BOARD_COLOURS[rng.integers(len(BOARD_COLOURS))]
        image[board_top:horizon, x : x + panel] = colour
        glyph = max(2, board_height // 2)
        text_columns = np.arange(x, min(x + panel, width))
        text_columns = text_columns[((text_columns - x) // glyph) % 3 != 2][2 * glyph :]
        text_rows = slice(board_top + board_height // 4,
                          board_top + max(board_height // 4 + 1, 3 * board_height // 4))
        image[text_rows, text_columns] = text
        x += panel
    label[board_top:horizon] = ADVERTISEMENT

    yy, xx = np.mgrid[horizon:height, 0:width].astype(np.float32)
    depth = (yy - horizon) / max(height - horizon, 1)
    slant = rng.uniform(-0.8, 0.8)
    stripe_width = width * rng.uniform(0.06, 0.12)
    stripes = (np.floor((xx + (yy - horizon) * slant) / stripe_width) % 2)[..., None]
    green = np.array(PITCH_GREENS[rng.integers(len(PITCH_GREENS))], dtype=np.float32)
    pitch = green * (0.9 + 0.15 * stripes) * (0.9 + 0.15 * depth[..., None])
    line_width = 1.0 + 2.5 * depth
    lines = np.abs(yy - (horizon + 2 + 0.02 * height)) < line_width * 0.5
    halfway_x = width * rng.uniform(0.2, 0.8)
    halfway_slope = rng.uniform(-0.6, 0.6)
    lines |= np.abs(xx - (halfway_x + (yy - horizon) * halfway_slope)) < line_width * 0.6
    circle_y = horizon + (height - horizon) * rng.uniform(0.3, 0.7)
    circle_x = halfway_x + (circle_y - horizon) * halfway_slope
    ring = np.hypot((yy - circle_y) / (0.12 * height), (xx - circle_x) / (0.22 * width))
    lines |= np.abs(ring - 1.0) < line_width / (0.12 * height) * 0.6
    pitch[lines] = LINE_WHITE
    image[horizon:] = pitch

    def person_height(foot_y: float) -> float:
        # Perspective: figures near the horizon are about a third as tall as those at the bottom.
        return height * (0.07 + 0.17 * max(foot_y - horizon, 0) / max(height - horizon, 1))

    def on_pitch() -> float:
        # Feet may lie a little below the frame, so near players are cut off as in broadcasts.
        return horizon + (height - horizon) * rng.uniform(0.05, 1.08)

    team_kits = rng.choice(len(TEAM_KITS), size=2, replace=False)
    keeper_kits = rng.choice(len(GOALKEEPER_KITS), size=2, replace=False)
    objects = []
    for class_id, kit_index, count in (
        (TEAM_A, team_kits[0], rng.integers(2, 9)),
        (TEAM_B, team_kits[1], rng.integers(2, 9)),
    ):
        objects += [(on_pitch(), rng.uniform(-0.05, 1.05) * width, class_id, TEAM_KITS[kit_index])
                    for _ in range(count)]
    goal_on_left = rng.random() < 0.5
    if rng.random() < 0.7:
        keeper_x = width * (rng.uniform(0.0, 0.3) if goal_on_left else rng.uniform(0.7, 1.0))
        objects.append((on_pitch(), keeper_x, GOALKEEPER_A, GOALKEEPER_KITS[keeper_kits[0]]))
    if rng.random() < 0.7:
        objects.append((on_pitch(), rng.uniform(0.0, 1.0) * width, GOALKEEPER_B,
                        GOALKEEPER_KITS[keeper_kits[1]]))
    if rng.random() < 0.85:
        objects.append((on_pitch(), rng.uniform(0.1, 0.9) * width, REFEREE,
                        REFEREE_KITS[rng.integers(len(REFEREE_KITS))]))
    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 4)):
            clothes = OFFICIAL_CLOTHES[rng.integers(len(OFFICIAL_CLOTHES))]
            foot_y = horizon + (height - horizon) * rng.uniform(0.02, 0.12)
            objects.append((foot_y, rng.uniform(0.02, 0.98) * width, OFFICIALS, (clothes, clothes, clothes)))
    if rng.random() < 0.9:
        ball_y = horizon + (height - horizon) * rng.uniform(0.1, 0.95)
        objects.append((ball_y, rng.uniform(0.05, 0.95) * width, BALL, None))
    if rng.random() < 0.6:
        foot_y = horizon + (height - horizon) * rng.uniform(0.15, 0.5)
        goal_x = width * (rng.uniform(-0.05, 0.1) if goal_on_left else rng.uniform(0.65, 0.8))
        objects.append((foot_y, goal_x, GOAL_BAR, None))

    for foot_y, foot_x, class_id, kit in sorted(objects, key=lambda o: o[0]):
        h = person_height(foot_y)
        if class_id == BALL:
            radius = max(1.0, 0.06 * h)
            _ellipse(image, label, round(foot_y - radius), round(foot_x), radius, radius, (245, 245, 245),
                     BALL)
        elif class_id == GOAL_BAR:
            _goal(image, label, foot_y, foot_x, 1.15 * h, 3.2 * h)
        else:
            skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
            _person(image, label, foot_y, foot_x, h, kit, skin, class_id, rng.uniform(-0.03, 0.08))

    # Bounded noise keeps every drawn colour recognisable, which the tests rely on.
    image += rng.uniform(-6, 6, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


class SyntheticScenes(torch.utils.data.Dataset):
    """num_frames scenes from make_scene, same item format as FSSOD; frame i uses seed * 100003 + i."""

    def __init__(self, num_frames: int, size: tuple[int, int] = SCENE_SIZE, seed: int = 0,
                 labels: bool = False) -> None:
        self.size = self.native_size = (int(size[0]), int(size[1]))
        self.seed = seed
        self.labels = labels
        # The seed is in the name: train and test scenes (seeds 0 and 1) must not share a cache entry.
        self.names = [f"synthetic_s{seed}_{i:04d}.png" for i in range(num_frames)]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        image, label = make_scene(self.seed * 100003 + index, self.size)
        item = {"image": torch.from_numpy(image.transpose(2, 0, 1).copy()).float().div_(255),
                "name": self.names[index]}
        if self.labels:
            item["label"] = torch.from_numpy(label)
        return item
