"""FSSOD frames, their masks, the folds they are scored on, and the frames served with the teacher's
masks (paper section 3.1, "Datasets").

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

SoccerSAM is trained and evaluated on FSSOD (Football Semantic Segmentation): 1920x1080 broadcast
frames of one match, each `Frame 1  (N).jpg` (two spaces, as published) with a colour-coded class
mask `Frame 1  (N).jpg___fuse.png` beside it, 11 classes from the goal bar to the two teams
(classes.py). The
paper resizes every frame to 416 x 608 (H x W); so do we, images bilinearly with antialiasing and
masks with nearest neighbour so that every label stays one of the 11 ids.

Two facts of the masks, measured on the 100 published frames, decide how we score:
- **Black is not a class.** "Coaches & Officials" is black (0, 0, 0) in `classes.json`, but no frame
  shows one: the 3,581 black pixels of the 100 published frames are annotation gaps, nearly all in the
  bottom two rows. Black pixels are read as unlabelled (`IGNORE_INDEX`, like 255) by default, so scores
  are over the 10 classes that occur; `black_is_class=True` restores the old counting.
- **Frames 1-10 are not a representative test split** (6.7% ground against 45.4% in the others; the
  referee never appears). The headline is therefore a k-fold cross-validation over all labelled
  frames (`fold_of_frames`): every frame is tested exactly once, by a model that never saw it.
  `split.json`'s train/test split stays available as the secondary "single split".

Training in SoccerSAM uses no labels: `FSSOD(..., labels=False)` never opens a mask file, and only
evaluation asks for `labels=True`. A folder of frames without any mask (the paper's own use case:
unlabelled footage) is accepted for training; it simply has nothing to score. Two checks let a command
stop on a bad file before any training, in one line naming it: `FSSOD.check_frames` decodes every frame
(no mask), evaluation's own `evaluate.check_labelled_frames` every mask it will score. Synthetic football
scenes for tests and the no-download default are a stand-in (stand_ins/synthetic.py). Last,
`FramesWithMasks` serves every training frame with the teacher's masks M_1..M_N from its cache
(sam_teacher.py): the input of Fig. 1.
"""
import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, OFFICIALS, PALETTE
from stand_ins.synthetic import SyntheticScenes

# Section 3.1: every frame resized to 416 x 608 (H x W).
PAPER_SIZE = (416, 608)

MASK_SUFFIX = "___fuse.png"
DOWNLOAD_HINT = ("download FSSOD (Football Semantic Segmentation, the publisher's flat folder of frames and "
                 "___fuse.png masks) and pass --data")


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """rgb: (..., 3) uint8 -> (...) int64 24-bit colour codes."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_SORTED_CODES = np.sort(_pack_rgb(PALETTE))
_ID_OF_SORTED_CODE = np.argsort(_pack_rgb(PALETTE))


def decode_mask(rgb: np.ndarray, path: str = "<array>", black_is_class: bool = False) -> np.ndarray:
    """Colour mask -> class ids by exact colour match.

    rgb: (H, W, 3) uint8 -> (H, W) int64 ids in 0..10, black pixels IGNORE_INDEX unless black_is_class
    (module header: black marks annotation gaps, not "Coaches & Officials"). Any colour outside the
    class table raises a ValueError naming `path` and the colours, because a near-miss match would
    confuse a team with its goalkeeper.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected an (H, W, 3) colour mask, got shape "
                         f"{rgb.shape}; pass the RGB channels")
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
    ids = _ID_OF_SORTED_CODE[position]
    if not black_is_class:
        ids[ids == OFFICIALS] = IGNORE_INDEX
    return ids


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


def fold_of_frames(names: list[str], folds: int) -> list[int]:
    """The cross-validation fold of each frame: frames in order of their number, cut into `folds`
    contiguous blocks of (nearly) equal size. Deterministic, and every frame lies in exactly one fold.

    Contiguous blocks rather than every k-th frame, because neighbouring frames of one broadcast look
    alike: a test frame should not have its near twin among the training frames.
    names: frame names -> (len(names),) fold ids in 0..folds-1, in the order of `names`.
    """
    if not 2 <= folds <= len(names):
        raise ValueError(f"--folds {folds}: cross-validation needs 2 to {len(names)} "
                         f"folds for {len(names)} frames")
    order = sorted(range(len(names)), key=lambda i: _frame_sort_key(names[i]))
    fold = [0] * len(names)
    for rank, index in enumerate(order):
        fold[index] = rank * folds // len(names)
    return fold


def _unreadable(path: Path, what: str, error: Exception) -> ValueError:
    return ValueError(f"{path}: cannot read this {what} ({error}); replace the file with an intact copy")


def _load_rgb(path: Path, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Open an image file as (H, W, 3) uint8 resized to size=(H, W); unreadable -> ValueError."""
    try:
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
    except (OSError, SyntaxError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise _unreadable(path, "image", error) from None
    if rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), resample=resample)
    return np.asarray(rgb)


def read_mask(path: Path, black_is_class: bool = False) -> np.ndarray:
    """Open a ___fuse.png mask (RGBA or RGB) -> (H, W) int64 ids at its own size, every pixel's colour
    checked (`decode_mask`); unreadable or an unknown colour -> ValueError naming the file."""
    try:
        with Image.open(path) as opened:
            rgb = np.asarray(opened.convert("RGB"))
    except (OSError, SyntaxError) as error:
        raise _unreadable(path, "mask", error) from None
    return decode_mask(rgb, str(path), black_is_class)


def _load_label(path: Path, size: tuple[int, int], black_is_class: bool) -> np.ndarray:
    """Open a ___fuse.png mask -> (H, W) int64 ids at size=(H, W), nearest resize."""
    # Decoded at full resolution so every pixel's colour is checked, then resized as ids.
    ids = read_mask(path, black_is_class)
    if ids.shape != tuple(size):
        ids_image = Image.fromarray(ids.astype(np.uint8))
        ids_image = ids_image.resize((size[1], size[0]), resample=Image.Resampling.NEAREST)
        ids = np.asarray(ids_image).astype(np.int64)
    return ids


class FSSOD(torch.utils.data.Dataset):
    """FSSOD frames in the publisher's flat layout.

    root: the folder holding the jpgs, or its parent with `images/` inside. split: "train", "test" or
    "all". fold=None: the single split, from split_file, else split.json beside or inside root, else
    test = frames 1-10 and train = the rest. fold=f (0..folds-1): cross-validation, test = the frames of
    fold f (`fold_of_frames`) and train = all others. Items: {"image": (3, H, W) float32 in [0, 1],
    "name": str} and, only with labels=True, "label": (H, W) int64 ids (black ignored unless black_is_class).
    `has_masks` says whether every frame has a mask (False for a folder of unlabelled frames);
    `native_size` is the size of the frames on disk. max_frames=N (quick checks): only N frames, spread
    evenly over the match and chosen before the folds or the split divide them, so that the folds
    partition these N frames as they would partition all of them.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] = PAPER_SIZE,
        labels: bool = False,
        split_file: str | Path | None = None,
        fold: int | None = None,
        folds: int = 5,
        black_is_class: bool = False,
        max_frames: int | None = None,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split {split!r} is not one of train, test, all; pass "
                             "--split train, test or all")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"FSSOD folder {root} not found: {DOWNLOAD_HINT} with the "
                                    "folder holding the frames")
        self.folder = root / "images" if (root / "images").is_dir() else root
        self.size = (int(size[0]), int(size[1]))
        self.labels, self.black_is_class = labels, black_is_class
        self._decoded: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        frames = sorted(
            (p.name for p in self.folder.iterdir()
             if p.suffix.lower() in (".jpg", ".jpeg") and "___" not in p.name),
            key=_frame_sort_key,
        )
        if not frames:
            raise FileNotFoundError(f"FSSOD folder {self.folder} holds no 'Frame 1  (N).jpg' frames: "
                                    f"{DOWNLOAD_HINT} with that folder")
        self.has_masks = all((self.folder / (name + MASK_SUFFIX)).is_file() for name in frames)
        if fold is not None and not 0 <= fold < folds:
            raise ValueError(f"--fold {fold}: there are folds 0 to {folds - 1}")
        self.split_file = None if fold is not None else self._find_split_file(root, split_file)
        chosen = frames
        if max_frames:
            chosen = [frames[i * len(frames) // max_frames] for i in range(min(max_frames, len(frames)))]
        if split == "all":
            self.names = chosen
        elif fold is not None:
            in_test = [f == fold for f in fold_of_frames(chosen, folds)]
            self.names = [name for name, test in zip(chosen, in_test) if test == (split == "test")]
        else:
            kept = set(chosen)
            self.names = [name for name in self._single_split(frames, split) if name in kept]
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
                raise FileNotFoundError(f"split file {split_file} not found; pass an "
                                        "existing split.json or none")
            return split_file
        for candidate in (self.folder.parent / "split.json", self.folder / "split.json", root / "split.json"):
            if candidate.is_file():
                return candidate
        return None

    def _single_split(self, frames: list[str], split: str) -> list[str]:
        if self.split_file is None:
            in_test = [_frame_number(name) in range(1, 11) for name in frames]
            return [name for name, test in zip(frames, in_test) if test == (split == "test")]
        try:
            listed = json.loads(self.split_file.read_text())[split]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{self.split_file}: not a JSON object with a {split!r} list "
                             f"of frame names ({error}); "
                             "fix or remove the file") from None
        available = set(frames)
        missing = [name for name in listed if name not in available]
        if missing:
            raise FileNotFoundError(
                f"{self.split_file} names {len(missing)} frame(s) missing from {self.folder}, "
                f"e.g. {missing[0]!r}; "
                "add the frames or remove them from the split file"
            )
        return sorted(listed, key=_frame_sort_key)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def native_size(self) -> tuple[int, int]:
        """(H, W) of the first frame as stored on disk, before resizing (predict.py compares new footage
        with it)."""
        path = self.folder / self.names[0]
        try:
            with Image.open(path) as opened:
                return opened.height, opened.width
        except (OSError, SyntaxError) as error:
            raise _unreadable(path, "image", error) from None

    def check_frames(self) -> None:
        """Decode every frame, so that an unreadable one stops a command before its work, in one line
        naming it (ValueError), not when training reaches it. JPEGs are decoded at 1/8 scale (PIL's draft
        mode still reads every byte of the file): about 4 ms a 1080p frame. Reads no mask."""
        for name in self.names:
            path = self.folder / name
            try:
                with Image.open(path) as opened:
                    opened.draft("RGB", (opened.width // 8, opened.height // 8))
                    opened.load()
            except (OSError, SyntaxError) as error:
                raise _unreadable(path, "image", error) from None

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        # Decoded and resized once per process: a 1920 x 1080 frame and its mask take tens of
        # milliseconds to decode, every epoch again otherwise.
        if name not in self._decoded:
            image = _load_rgb(self.folder / name, self.size, Image.Resampling.BILINEAR)
            label = None
            if self.labels:
                mask_path = self.folder / (name + MASK_SUFFIX)
                label = _load_label(mask_path, self.size, self.black_is_class).astype(np.uint8)
            self._decoded[name] = image, label
        image, label = self._decoded[name]
        item = {"image": torch.from_numpy(image.transpose(2, 0, 1).copy()).float().div_(255), "name": name}
        if label is not None:
            item["label"] = torch.from_numpy(label.astype(np.int64))
        return item


def open_dataset(data: str | Path, split: str, size: tuple[int, int] = PAPER_SIZE, labels: bool = False,
                 fold: int | None = None, folds: int = 5, max_frames: int | None = None,
                 black_is_class: bool = False) -> torch.utils.data.Dataset:
    """FSSOD at `data` (or its fold), or synthetic scenes when data == "synthetic": `max_frames` (default
    48) training scenes and a quarter as many test scenes, drawn from other seeds. For FSSOD,
    `max_frames` keeps N frames spread over the match before the split (quick checks; `FSSOD`)."""
    if str(data) == "synthetic":
        frames = max_frames or 48
        return SyntheticScenes(frames if split == "train" else max(frames // 4, 4), size,
                               seed=0 if split == "train" else 1, labels=labels)
    return FSSOD(data, split, size, labels=labels, fold=fold, folds=folds, black_is_class=black_is_class,
                 max_frames=max_frames)


def check_size(size) -> None:
    """Refuse a frame size the student cannot take, before any cache or run folder is made: H and W
    positive multiples of 32 (its encoder downsamples 32x)."""
    if len(size) != 2 or any(side <= 0 or side % 32 for side in size):
        raise ValueError(f"--size {' '.join(map(str, size))}: H and W must be positive multiples of 32, "
                         "e.g. 416 608 (the paper's) or 224 320")


class FramesWithMasks(torch.utils.data.Dataset):
    """Each frame of `frames` with its teacher masks M_1..M_N, a MaskSet (mask_set.py), from `cache`
    (sam_teacher.MaskCache: `load(name) -> MaskSet`); without a cache, the frame alone (the supervised
    baseline). A frame's masks are read from disk once and then kept in memory, as the frames are."""

    def __init__(self, frames: torch.utils.data.Dataset, cache=None):
        self.frames, self.cache, self.loaded = frames, cache, {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.frames[i])
        if self.cache is not None:
            if item["name"] not in self.loaded:
                self.loaded[item["name"]] = self.cache.load(item["name"])
            item["masks"] = self.loaded[item["name"]]
        return item


def collate(items: list[dict]) -> dict:
    """Frames stack into a batch: "image" (B, 3, H, W) and "label" (B, H, W); names and masks stay lists,
    because every frame has its own N masks."""
    batch = {key: torch.stack([it[key] for it in items]) for key in ("image", "label") if key in items[0]}
    batch.update({key: [it[key] for it in items] for key in ("name", "masks") if key in items[0]})
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Print the per-class pixel shares of an FSSOD split. Analysis only: this command reads "
                    "the labels."
    )
    parser.add_argument("--data", required=True, help="FSSOD folder (the jpgs or their parent)")
    parser.add_argument("--split", default="train", choices=("train", "test", "all"))
    parser.add_argument("--fold", type=int,
                        help="a cross-validation fold (0..4) instead of split.json's split")
    parser.add_argument("--size", type=int, nargs=2, default=PAPER_SIZE, metavar=("H", "W"))
    args = parser.parse_args()
    dataset = FSSOD(args.data, args.split, tuple(args.size), labels=True, fold=args.fold, black_is_class=True)
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for index in range(len(dataset)):
        counts += np.bincount(dataset[index]["label"].numpy().ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    print(f"{len(dataset)} frames of split {args.split} at {args.size[0]}x{args.size[1]}, "
          f"{counts.sum()} pixels")
    for class_id, name in enumerate(CLASS_NAMES):
        print(f"{class_id:>2} {name:<20} {100 * counts[class_id] / counts.sum():8.3f} %")


if __name__ == "__main__":
    main()
