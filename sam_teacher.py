"""The SAM teacher, paper section 2.1: class-agnostic masks M_1..M_N, computed once per frame.

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

SoccerSAM starts by running a frozen Segment Anything Model (SAM) over every unlabeled training
frame x (416 x 608 x 3). SAM's automatic mask generator prompts it with a grid of points and keeps
the confident, stable answers: a set of instance masks {M_i}, i = 1..N, that carry structure but no
class. The Semantic Bridging Module later gives each mask class logits (eqs. 1-2, sbm.py); this file
produces the masks (`SamTeacher`) and keeps them (`build_cache`, `MaskCache`).

SAM is frozen, so its masks never change during training: they are computed once per frame into a
cache folder, one file per frame holding its `MaskSet` (mask_set.py; the file's layout is
engineering/mask_files.py), written atomically so that an interrupted build resumes where it stopped;
`settings.json` records the teacher and its settings, and a cache made with other settings is refused.
Training reads the cache and never loads SAM once every frame is there. The paper does not say this;
it is the obvious reading of a frozen teacher.

Without a SAM checkpoint (none can be downloaded on our machines) the masks come from the stand-ins
of stand_ins/regions.py, in SAM's own form: PiDiNet regions (the default), superpixels, and the
analysis-only oracle. Every result says which source made its masks (`make_teacher`).

The paper also names SAM's boundary map B_SAM, but its eq. 3 asks the student for the edges of the
SBM's map, B_SBM (losses.py); B_SAM as eq. 3's target was measured no better and is not computed
(RESULTS.md, "Tried and dropped").

Build a cache beforehand (train.py otherwise builds the one it needs, in this default folder):
    python3 sam_teacher.py --data ../shared/fssod --source boundary --out cache/fssod-boundary-416x608
"""
import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from data import check_size, open_dataset
from engineering.files import check_rgb_image, report_user_errors, write_atomically
from engineering.mask_files import FORMAT as CACHE_FORMAT, encode_mask_set, read_mask_set
from mask_set import MaskSet
from stand_ins.regions import BoundaryTeacher, OracleTeacher, SuperpixelTeacher

CHECKPOINT_HELP = (
    "The official SAM checkpoints are listed at "
    "https://github.com/facebookresearch/segment-anything#model-checkpoints "
    "(vit_b: sam_vit_b_01ec64.pth, vit_l: sam_vit_l_0b3195.pth, vit_h: sam_vit_h_4b8939.pth); "
    "download one and pass its path with --sam-checkpoint."
)


def load_sam(checkpoint: str) -> torch.nn.Module:
    """An official segment-anything checkpoint -> the SAM model, its size (vit_b, vit_l or vit_h) read
    off the weights. A missing, unreadable or foreign file raises a one-line error."""
    from segment_anything import sam_model_registry

    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"SAM checkpoint {checkpoint!r} does not exist. {CHECKPOINT_HELP}")
    try:
        state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
        width = state_dict["image_encoder.patch_embed.proj.weight"].shape[0]
    except Exception:
        raise ValueError(f"Cannot read SAM checkpoint {checkpoint!r}: it is not a "
                         "segment-anything checkpoint. "
                         f"{CHECKPOINT_HELP}") from None
    model_type = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}.get(width)
    model = sam_model_registry[model_type or "vit_b"](checkpoint=None)
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError):
        raise ValueError(f"SAM checkpoint {checkpoint!r} does not fit SAM ViT-B, ViT-L or ViT-H. "
                         f"{CHECKPOINT_HELP}") from None
    model.model_type = model_type
    return model


class SamTeacher:
    """Segment Anything's automatic mask generator, frozen.

    The generator settings are segment-anything's own (`SamAutomaticMaskGenerator`); `settings`
    records every one that changes the masks, and the cache refuses to mix settings.
    checkpoint: an official SAM checkpoint (required). random_weights=True builds an untrained SAM
    ViT-B instead, whose masks are meaningless: only tests and the benchmark's timing ask for it.
    """

    needs_label = False

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str = "cpu",
        points_per_side: int = 32,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        points_per_batch: int = 64,
        random_weights: bool = False,
    ) -> None:
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

        if checkpoint is None and not random_weights:
            raise FileNotFoundError("The SAM mask source needs SAM's weights and none were "
                                    f"given. {CHECKPOINT_HELP} "
                                    "Without a checkpoint, use --source boundary.")
        model = sam_model_registry["vit_b"](checkpoint=None) if checkpoint is None else load_sam(checkpoint)
        self.model = model.to(device).eval()
        self.generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
        )
        # points_per_batch and device change speed and memory, not the masks, so they are left out.
        self.settings = {
            "source": "sam",
            "checkpoint": os.path.basename(checkpoint) if checkpoint is not None else None,
            "points_per_side": points_per_side,
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
        }

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool at the image's size, largest first."""
        check_rgb_image(image)
        records = self.generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return sort_by_area(np.stack([record["segmentation"] for record in records]).astype(bool))


def sort_by_area(masks: np.ndarray) -> np.ndarray:
    """masks: (N, H, W) bool -> the same masks, largest area first (stable for ties)."""
    areas = masks.reshape(len(masks), -1).sum(1)
    return masks[np.argsort(-areas, kind="stable")]


# ----------------------------------------------------------------------------------------------
# The mask sources, and the cache that computes their masks once per frame.

SOURCES = ("sam", "boundary", "superpixel", "oracle")
SETTINGS_FILE = "settings.json"
Teacher = SamTeacher | BoundaryTeacher | SuperpixelTeacher | OracleTeacher


def make_teacher(source: str, sam_checkpoint: str | None = None, device: str = "cpu") -> Teacher:
    """The mask source named `source` (one of SOURCES) with its default settings."""
    if source == "sam":
        return SamTeacher(sam_checkpoint, device=device)
    if sam_checkpoint is not None:
        raise ValueError(f"--sam-checkpoint is for --source sam; the {source!r} source takes none.")
    if source == "boundary":
        return BoundaryTeacher(device=device)
    if source == "superpixel":
        return SuperpixelTeacher()
    if source == "oracle":
        return OracleTeacher()
    raise ValueError(f"Unknown mask source {source!r}; choose one of {', '.join(SOURCES)}")


def _build_command(cache_dir: str, source: str) -> str:
    return f"python3 sam_teacher.py --data ../shared/fssod --source {source} --out {cache_dir}"


def _frame_path(cache_dir: str, name: str) -> str:
    if os.sep in name or name.startswith("."):
        raise ValueError(f"Frame name {name!r} cannot be a cache file name (it holds a path "
                         "separator or starts with '.')")
    return os.path.join(cache_dir, name + ".npz")


def missing_frames(cache_dir: str, names: Sequence[str]) -> list[str]:
    """The names among `names` whose masks are not in cache_dir yet (all of them when there is no
    cache): callers build the teacher only when this is not empty, so a complete cache never loads SAM."""
    return [name for name in names if not os.path.isfile(_frame_path(str(cache_dir), name))]


def _settings_difference(stored: dict, expected: dict, keys: list[str]) -> str:
    missing = "<missing>"
    return "; ".join(
        f"{key}: cache has {stored.get(key, missing)!r}, asked for {expected.get(key, missing)!r}"
        for key in keys
        if stored.get(key, missing) != expected.get(key, missing)
    )


class MaskCache:
    """Reads the masks that `build_cache` wrote.

    expected_settings: keys that the cache's settings.json must hold with these values (for
    example {"source": "superpixel", "image_size": [416, 608]}); any difference is a ValueError.
    load(name) -> masks: MaskSet.
    """

    def __init__(self, cache_dir: str, expected_settings: dict | None = None) -> None:
        self.cache_dir = str(cache_dir)
        settings_path = os.path.join(self.cache_dir, SETTINGS_FILE)
        if not os.path.isfile(settings_path):
            source = (expected_settings or {}).get("source", "boundary")
            raise FileNotFoundError(f"No mask cache at {self.cache_dir!r} (missing {SETTINGS_FILE}). "
                                    f"Build it with: {_build_command(self.cache_dir, source)}")
        with open(settings_path) as file:
            self.settings: dict = json.load(file)
        rebuild = _build_command(self.cache_dir, self.settings.get("source", "boundary"))
        if self.settings.get("format") != CACHE_FORMAT:
            raise ValueError(f"The mask cache {self.cache_dir!r} was written in an older layout (format "
                             f"{self.settings.get('format', 1)}, this code reads format {CACHE_FORMAT}). "
                             f"Delete the folder and rebuild it with: {rebuild}")
        if expected_settings is not None:
            # A round trip through JSON turns tuples into lists, as they are stored.
            expected = json.loads(json.dumps(expected_settings))
            difference = _settings_difference(self.settings, expected, list(expected))
            if difference:
                raise ValueError(f"The mask cache {self.cache_dir!r} was made with other "
                                 f"settings ({difference}). "
                                 "Rebuild it with the settings you want, or pass another cache folder.")
        self.rebuild_command = rebuild
        self.names: list[str] = sorted(entry[: -len(".npz")] for entry in os.listdir(self.cache_dir)
                                       if entry.endswith(".npz") and not entry.startswith("."))

    def __contains__(self, name: str) -> bool:
        return os.path.isfile(_frame_path(self.cache_dir, name))

    def __len__(self) -> int:
        return len(self.names)

    def load(self, name: str) -> MaskSet:
        """name: frame name (e.g. "Frame 1  (11).jpg") -> its masks."""
        path = _frame_path(self.cache_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Frame {name!r} is not in the mask cache "
                                    f"{self.cache_dir!r} ({path} is missing). "
                                    f"Build it with: {self.rebuild_command}")
        return read_mask_set(path)


def _to_uint8_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """image: (3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8).transpose(1, 2, 0)


def build_cache(dataset: Sequence[dict], teacher: Teacher, out_dir: str, progress: bool = True) -> MaskCache:
    """Run the teacher over every frame of `dataset` and store its masks in out_dir.

    dataset: items {"image": (3, H, W) float in [0, 1], "name": str, "label": (H, W) int (oracle only)}.
    settings.json (teacher settings + image size) is written first; frames whose file exists are
    skipped, so an interrupted run resumes. A folder made with other settings is refused.
    """
    out_dir = str(out_dir)
    if len(dataset) == 0:
        raise ValueError("build_cache got an empty dataset: no frames to cache.")
    os.makedirs(out_dir, exist_ok=True)
    first = dataset[0]
    size = [int(s) for s in first["image"].shape[-2:]]
    settings = dict(teacher.settings, image_size=size, format=CACHE_FORMAT)
    settings_path = os.path.join(out_dir, SETTINGS_FILE)
    if os.path.isfile(settings_path):
        with open(settings_path) as file:
            stored = json.load(file)
        if stored != settings:
            difference = _settings_difference(stored, settings, sorted(set(stored) | set(settings)))
            raise ValueError(f"The mask cache {out_dir!r} was made with other settings ({difference}). "
                             "Pass another --out or delete the folder.")
    else:
        write_atomically(settings_path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())

    # Names known up front let a resumed run skip finished frames without decoding their images.
    names = getattr(dataset, "names", None)
    for index in tqdm(range(len(dataset)), desc=f"{settings['source']} masks", disable=not progress):
        if names is not None and os.path.isfile(_frame_path(out_dir, names[index])):
            continue
        item = first if index == 0 else dataset[index]
        path = _frame_path(out_dir, item["name"])
        if os.path.isfile(path):
            continue
        image = _to_uint8_image(item["image"])
        if list(image.shape[:2]) != settings["image_size"]:
            raise ValueError(f"Frame {item['name']!r} is {image.shape[:2]}, the cache holds "
                             f"{settings['image_size']} "
                             "frames: resize all frames to one size.")
        if teacher.needs_label:
            if "label" not in item:
                raise ValueError("The oracle teacher needs the ground truth: open the frames with their "
                                 "masks (analysis only).")
            label = item["label"]
            masks = teacher(image, label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label))
        else:
            masks = teacher(image)
        write_atomically(path, encode_mask_set(MaskSet.from_masks(masks)))
    return MaskCache(out_dir, expected_settings=settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Precompute the teacher's masks into a cache folder (paper section 2.1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="FSSOD folder (the frames or their parent), or 'synthetic'")
    parser.add_argument("--split", choices=("train", "test", "all"), default="all",
                        help="which frames (all: every frame, so that every fold of the cross-validation "
                             "finds its masks)")
    parser.add_argument("--source", choices=SOURCES, default="boundary",
                        help="sam [paper] (needs --sam-checkpoint), boundary [ours] (PiDiNet regions: the "
                             "stand-in without SAM weights), superpixel [ours] (felzenszwalb), oracle "
                             "[analysis] (reads labels)")
    parser.add_argument("--sam-checkpoint", help="official SAM checkpoint, e.g. sam_vit_b_01ec64.pth")
    parser.add_argument("--size", type=int, nargs=2, default=(416, 608), metavar=("H", "W"),
                        help="[paper] frame size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the teacher runs: cuda or cpu")
    parser.add_argument("--out", required=True, help="cache folder")
    args = parser.parse_args(argv)
    check_size(args.size)

    dataset = open_dataset(args.data, args.split, tuple(args.size), labels=args.source == "oracle")
    teacher = make_teacher(args.source, args.sam_checkpoint, args.device)
    try:
        cache = build_cache(dataset, teacher, args.out)
    except KeyboardInterrupt:
        # Every frame's file is written atomically: the frames done are kept, and a rerun skips them.
        raise SystemExit(f"stopped (Ctrl-C): {args.out} keeps the masks of every finished frame; the same "
                         "command continues") from None
    print(f"{len(cache)} frames cached in {args.out} ({args.source} masks)", file=sys.stderr)


if __name__ == "__main__":
    report_user_errors(main)
