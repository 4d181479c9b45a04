"""FSSOD frames and synthetic football scenes (paper Sec. 4.1, "Dataset").

SoccerSAM is trained and evaluated on FSSOD (Football Semantic Segmentation): 1920x1080 broadcast
frames of one match, each `Frame 1  (N).jpg` (two spaces, as published) with a colour-coded class
mask `Frame 1  (N).jpg___fuse.png` beside it, 11 classes from the goal bar to the two teams. The
paper resizes every frame to 416 x 608 (H x W); so do we, images bilinearly with antialiasing and
masks with nearest neighbour so that every label stays one of the 11 ids.

Training in SoccerSAM uses no labels: `FSSOD(..., labels=False)` never opens a mask file, and only
evaluation asks for `labels=True`. For tests and for runs without the dataset, `make_scene` draws a
broadcast-like frame (pitch, lines, boards, audience, goal, two teams, goalkeepers, referee, ball,
officials) together with the exact label map of what it drew, in the same 11 ids.

Run `python data.py --data DIR --split train` to print the per-class pixel frequencies of a split
(an analysis command: it reads the labels).
"""
import argparse
import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image


class FSSODClass(NamedTuple):
    id: int
    name: str
    rgb: tuple[int, int, int]


# Ids and mask colours of the dataset's own class list (also in fssod/classes.json). Team A and
# Goalkeeper A, and Team B and Goalkeeper B, differ by only a few colour units in the masks, so
# masks are decoded by exact colour match, never by nearest colour.
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
IGNORE_INDEX = 255
CLASS_NAMES: list[str] = [c.name for c in CLASSES]
PALETTE: np.ndarray = np.array([c.rgb for c in CLASSES], dtype=np.uint8)

GOAL_BAR, REFEREE, ADVERTISEMENT, GROUND, BALL, OFFICIALS, AUDIENCE = 0, 1, 2, 3, 4, 5, 6
GOALKEEPER_A, GOALKEEPER_B, TEAM_A, TEAM_B = 7, 8, 9, 10

DEFAULT_SIZE = (416, 608)
MASK_SUFFIX = "___fuse.png"
DOWNLOAD_HINT = "download FSSOD (Football Semantic Segmentation, the publisher's flat folder of frames and ___fuse.png masks) and pass --data"


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """rgb: (..., 3) uint8 -> (...) int64 24-bit colour codes."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_SORTED_CODES = np.sort(_pack_rgb(PALETTE))
_ID_OF_SORTED_CODE = np.argsort(_pack_rgb(PALETTE))


def decode_mask(rgb: np.ndarray, path: str = "<array>") -> np.ndarray:
    """Colour mask -> class ids by exact colour match.

    rgb: (H, W, 3) uint8 -> (H, W) int64 ids in 0..10. Any other colour raises a ValueError naming
    `path` and the colours, because a near-miss match would confuse a team with its goalkeeper.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected an (H, W, 3) colour mask, got shape {rgb.shape}; pass the RGB channels")
    codes = _pack_rgb(rgb)
    position = np.minimum(np.searchsorted(_SORTED_CODES, codes), NUM_CLASSES - 1)
    known = _SORTED_CODES[position] == codes
    if not known.all():
        unknown = np.unique(codes[~known]).tolist()
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:5])
        raise ValueError(
            f"{path}: {len(unknown)} mask colour(s) not in the FSSOD class table, e.g. {shown}; "
            "the mask must use exactly the 11 colours of fssod/classes.json"
        )
    return _ID_OF_SORTED_CODE[position]


def colorize(label: np.ndarray) -> np.ndarray:
    """label: (H, W) ids -> (H, W, 3) uint8 in the dataset's palette; IGNORE_INDEX -> white."""
    label = np.asarray(label)
    out = np.full(label.shape + (3,), 255, dtype=np.uint8)
    known = label < NUM_CLASSES
    out[known] = PALETTE[label[known]]
    return out


def _frame_number(name: str) -> int | None:
    match = re.search(r"\((\d+)\)\.jpe?g$", name, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def _frame_sort_key(name: str) -> tuple[float, str]:
    number = _frame_number(name)
    return (float("inf") if number is None else number, name)


def _load_rgb(path: Path, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Open an image file as (H, W, 3) uint8 resized to size=(H, W); unreadable -> ValueError."""
    try:
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read this image ({error}); replace the file with an intact copy") from error
    if rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), resample=resample)
    return np.asarray(rgb)


def _load_label(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Open a ___fuse.png mask (RGBA or RGB) -> (H, W) int64 ids at size=(H, W), nearest resize."""
    try:
        with Image.open(path) as opened:
            rgb = np.asarray(opened.convert("RGB"))
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read this mask ({error}); replace the file with an intact copy") from error
    # Decoded at full resolution so every pixel's colour is checked, then resized as ids.
    ids = decode_mask(rgb, str(path))
    if ids.shape != tuple(size):
        ids_image = Image.fromarray(ids.astype(np.uint8)).resize((size[1], size[0]), resample=Image.Resampling.NEAREST)
        ids = np.asarray(ids_image).astype(np.int64)
    return ids


class FSSOD(torch.utils.data.Dataset):
    """FSSOD frames in the publisher's flat layout.

    root: the folder holding the jpgs, or its parent with `images/` inside. split: "train", "test"
    or "all". The split comes from split_file, else from split.json beside or inside root, else
    test = frames 1-10 and train = the rest. Items: {"image": (3, H, W) float32 in [0, 1],
    "name": str} and, only with labels=True, "label": (H, W) int64 ids.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] = DEFAULT_SIZE,
        labels: bool = False,
        split_file: str | Path | None = None,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split {split!r} is not one of train, test, all; pass --split train, test or all")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"FSSOD folder {root} not found: {DOWNLOAD_HINT} with the folder holding the frames")
        self.folder = root / "images" if (root / "images").is_dir() else root
        self.size = (int(size[0]), int(size[1]))
        self.labels = labels
        frames = sorted(
            (p.name for p in self.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg") and "___" not in p.name),
            key=_frame_sort_key,
        )
        if not frames:
            raise FileNotFoundError(f"FSSOD folder {self.folder} holds no 'Frame 1  (N).jpg' frames: {DOWNLOAD_HINT} with that folder")
        self.split_file = self._find_split_file(root, split_file)
        self.names = self._select(frames, split)
        if labels:
            for name in self.names:
                if not (self.folder / (name + MASK_SUFFIX)).is_file():
                    raise FileNotFoundError(
                        f"{self.folder / name}: no mask {name + MASK_SUFFIX} beside it; "
                        "put the publisher's ___fuse.png next to the frame or pass labels=False"
                    )

    def _find_split_file(self, root: Path, split_file: str | Path | None) -> Path | None:
        if split_file is not None:
            split_file = Path(split_file)
            if not split_file.is_file():
                raise FileNotFoundError(f"split file {split_file} not found; pass an existing split.json or none")
            return split_file
        for candidate in (self.folder.parent / "split.json", self.folder / "split.json", root / "split.json"):
            if candidate.is_file():
                return candidate
        return None

    def _select(self, frames: list[str], split: str) -> list[str]:
        if split == "all":
            return frames
        if self.split_file is None:
            in_test = [_frame_number(name) in range(1, 11) for name in frames]
            return [name for name, test in zip(frames, in_test) if test == (split == "test")]
        try:
            listed = json.loads(self.split_file.read_text())[split]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{self.split_file}: not a JSON object with a {split!r} list of frame names ({error}); fix or remove the file") from error
        available = set(frames)
        missing = [name for name in listed if name not in available]
        if missing:
            raise FileNotFoundError(
                f"{self.split_file} names {len(missing)} frame(s) missing from {self.folder}, e.g. {missing[0]!r}; "
                "add the frames or remove them from the split file"
            )
        return sorted(listed, key=_frame_sort_key)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        image = _load_rgb(self.folder / name, self.size, Image.Resampling.BILINEAR)
        item = {"image": torch.from_numpy(image.transpose(2, 0, 1).copy()).float().div_(255), "name": name}
        if self.labels:
            item["label"] = torch.from_numpy(_load_label(self.folder / (name + MASK_SUFFIX), self.size))
        return item


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
BOARD_COLOURS = ((20, 40, 140), (200, 20, 30), (240, 240, 240), (20, 20, 20), (250, 200, 0), (0, 130, 200), (120, 20, 120))
PITCH_GREENS = ((45, 125, 45), (60, 140, 50), (40, 110, 55))
LINE_WHITE = (238, 240, 236)


def _rect(image: np.ndarray, label: np.ndarray, y0: float, y1: float, x0: float, x1: float, colour, class_id: int) -> None:
    """Fill the box [y0, y1) x [x0, x1), at least one pixel wide, clipped to the frame."""
    height, width = label.shape
    top, left = int(round(y0)), int(round(x0))
    bottom, right = max(int(round(y1)), top + 1), max(int(round(x1)), left + 1)
    top, bottom, left, right = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if bottom > top and right > left:
        image[top:bottom, left:right] = colour
        label[top:bottom, left:right] = class_id


def _ellipse(image: np.ndarray, label: np.ndarray, cy: float, cx: float, ry: float, rx: float, colour, class_id: int) -> None:
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


def _person(image, label, foot_y: float, foot_x: float, height: float, kit, skin, class_id: int, stride: float) -> None:
    """A standing figure whose feet are at (foot_y, foot_x): legs, shorts, shirt with arms, head."""
    shirt, shorts, socks = kit
    h = height
    for side in (-1, 1):
        leg_x = foot_x + side * (0.06 + stride) * h
        _rect(image, label, foot_y - 0.45 * h, foot_y - 0.22 * h, leg_x - 0.045 * h, leg_x + 0.045 * h, skin, class_id)
        _rect(image, label, foot_y - 0.22 * h, foot_y, leg_x - 0.045 * h, leg_x + 0.045 * h, socks, class_id)
    _rect(image, label, foot_y - 0.56 * h, foot_y - 0.40 * h, foot_x - 0.14 * h, foot_x + 0.14 * h, shorts, class_id)
    _rect(image, label, foot_y - 0.84 * h, foot_y - 0.54 * h, foot_x - 0.15 * h, foot_x + 0.15 * h, shirt, class_id)
    for side in (-1, 1):
        arm_x = foot_x + side * 0.19 * h
        _rect(image, label, foot_y - 0.82 * h, foot_y - 0.66 * h, arm_x - 0.04 * h, arm_x + 0.04 * h, shirt, class_id)
        _rect(image, label, foot_y - 0.66 * h, foot_y - 0.55 * h, arm_x - 0.035 * h, arm_x + 0.035 * h, skin, class_id)
    _ellipse(image, label, foot_y - 0.92 * h, foot_x, 0.08 * h, 0.065 * h, skin, class_id)


def _goal(image, label, foot_y: float, left_x: float, height: float, width: float) -> None:
    """Goal frame seen from the side of the pitch: two posts and the crossbar (Goal Bar, id 0)."""
    post = max(1.0, height / 22)
    _rect(image, label, foot_y - height, foot_y, left_x, left_x + post, LINE_WHITE, GOAL_BAR)
    _rect(image, label, foot_y - height, foot_y, left_x + width - post, left_x + width, LINE_WHITE, GOAL_BAR)
    _rect(image, label, foot_y - height, foot_y - height + post, left_x, left_x + width, LINE_WHITE, GOAL_BAR)


def make_scene(seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
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
    image[:board_top] = crowd[rows][:, cols] * np.linspace(0.6, 1.0, board_top, dtype=np.float32)[:, None, None]
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
        text_rows = slice(board_top + board_height // 4, board_top + max(board_height // 4 + 1, 3 * board_height // 4))
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
        objects += [(on_pitch(), rng.uniform(-0.05, 1.05) * width, class_id, TEAM_KITS[kit_index]) for _ in range(count)]
    goal_on_left = rng.random() < 0.5
    if rng.random() < 0.7:
        keeper_x = width * (rng.uniform(0.0, 0.3) if goal_on_left else rng.uniform(0.7, 1.0))
        objects.append((on_pitch(), keeper_x, GOALKEEPER_A, GOALKEEPER_KITS[keeper_kits[0]]))
    if rng.random() < 0.7:
        objects.append((on_pitch(), rng.uniform(0.0, 1.0) * width, GOALKEEPER_B, GOALKEEPER_KITS[keeper_kits[1]]))
    if rng.random() < 0.85:
        objects.append((on_pitch(), rng.uniform(0.1, 0.9) * width, REFEREE, REFEREE_KITS[rng.integers(len(REFEREE_KITS))]))
    if rng.random() < 0.5:
        for _ in range(rng.integers(1, 4)):
            clothes = OFFICIAL_CLOTHES[rng.integers(len(OFFICIAL_CLOTHES))]
            foot_y = horizon + (height - horizon) * rng.uniform(0.02, 0.12)
            objects.append((foot_y, rng.uniform(0.02, 0.98) * width, OFFICIALS, (clothes, clothes, clothes)))
    if rng.random() < 0.9:
        objects.append((horizon + (height - horizon) * rng.uniform(0.1, 0.95), rng.uniform(0.05, 0.95) * width, BALL, None))
    if rng.random() < 0.6:
        foot_y = horizon + (height - horizon) * rng.uniform(0.15, 0.5)
        objects.append((foot_y, width * (rng.uniform(-0.05, 0.1) if goal_on_left else rng.uniform(0.65, 0.8)), GOAL_BAR, None))

    for foot_y, foot_x, class_id, kit in sorted(objects, key=lambda o: o[0]):
        h = person_height(foot_y)
        if class_id == BALL:
            radius = max(1.0, 0.06 * h)
            _ellipse(image, label, round(foot_y - radius), round(foot_x), radius, radius, (245, 245, 245), BALL)
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

    def __init__(self, num_frames: int, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, labels: bool = False) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.seed = seed
        self.labels = labels
        # The seed is in the name: train and test scenes (seeds 0 and 1) must not share a cache entry.
        self.names = [f"synthetic_s{seed}_{i:04d}.png" for i in range(num_frames)]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        image, label = make_scene(self.seed * 100003 + index, self.size)
        item = {"image": torch.from_numpy(image.transpose(2, 0, 1).copy()).float().div_(255), "name": self.names[index]}
        if self.labels:
            item["label"] = torch.from_numpy(label)
        return item


def open_dataset(data: str | Path, split: str, size: tuple[int, int] = DEFAULT_SIZE, labels: bool = False,
                 num_synthetic: int = 48) -> torch.utils.data.Dataset:
    """FSSOD at `data`, or synthetic scenes when data == "synthetic" (train and test from different seeds)."""
    if str(data) == "synthetic":
        frames = num_synthetic if split == "train" else max(num_synthetic // 4, 4)
        return SyntheticScenes(frames, size, seed=0 if split == "train" else 1, labels=labels)
    return FSSOD(data, split, size, labels=labels)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Print the per-class pixel frequencies of an FSSOD split. Analysis only: this command reads the labels."
    )
    parser.add_argument("--data", required=True, help="FSSOD folder (the jpgs or their parent), or 'synthetic'")
    parser.add_argument("--split", default="train", choices=("train", "test", "all"))
    parser.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE, metavar=("H", "W"))
    parser.add_argument("--num-frames", type=int, default=100, help="frames drawn when --data synthetic")
    args = parser.parse_args()
    dataset = open_dataset(args.data, args.split, tuple(args.size), labels=True, num_synthetic=args.num_frames)
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for index in range(len(dataset)):
        counts += np.bincount(dataset[index]["label"].numpy().ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    print(f"{len(dataset)} frames of split {args.split} at {args.size[0]}x{args.size[1]}, {counts.sum()} pixels")
    for class_id, name in enumerate(CLASS_NAMES):
        print(f"{class_id:>2} {name:<20} {100 * counts[class_id] / counts.sum():8.3f} %")


if __name__ == "__main__":
    main()
