"""The SAM teacher: class-agnostic masks M_1..M_N and the boundary map B_SAM (paper section 2.1).

SoccerSAM starts by running a frozen Segment Anything Model (SAM) over every unlabeled training
frame x (416 x 608 x 3). SAM's automatic mask generator prompts it with a grid of points and keeps
the confident, stable answers: a set of instance masks {M_i}, i = 1..N, that carry structure but no
class. The union of their edges is the boundary map B_SAM, which the boundary-aware loss (eq. 3)
asks the student to reproduce. The Semantic Bridging Module later gives each mask class logits
(eqs. 1-2); this file only produces the masks.

SAM is frozen, so its masks never change during training: we compute them once per frame and
store them in a cache folder (one `<frame name>.npz` per frame, written atomically, so an
interrupted run resumes where it stopped). A frame's masks are stored as a `MaskSet`: the pieces
(segments) the masks cut the frame into, and which mask covers which piece. That form is 200x
smaller than N dense masks and lets the SBM compute eqs. 1 and 2 once per segment (sbm.py).
Training reads the cache through `MaskCache` and never loads SAM. Four mask sources fill the cache, and every result must say which one it used:
- "sam": segment-anything with an official checkpoint, the paper's teacher. Without a checkpoint
  it runs with random weights, which is only good for tests and timing.
- "superpixel": scikit-image graph-based regions (felzenszwalb, or slic), our stand-in when no SAM
  checkpoint is available; label-free, so its results are legitimate headline numbers, labelled as
  "superpixel masks" rather than SAM.
- "oracle": connected components of the ground-truth class regions with the class ids dropped.
  It reads labels, so it is for analysis only: an upper bound on what perfect SAM masks would give.
- "student": connected components of the segmentation a trained, label-free student predicts
  (a finished train.py run): a second round, whose regions are the first round's objects.

Build a cache (train.py's default folder for these frames and this source):
    python sam_teacher.py --data ../shared/fssod --split all --source superpixel --out cache/fssod-superpixel-416x608
"""

import argparse
import io
import json
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import expand_labels, felzenszwalb, slic
from tqdm import tqdm

SOURCES = ("sam", "superpixel", "oracle", "student")
CHECKPOINT_HELP = (
    "The official SAM checkpoints are listed at "
    "https://github.com/facebookresearch/segment-anything#model-checkpoints "
    "(vit_b: sam_vit_b_01ec64.pth, vit_l: sam_vit_l_0b3195.pth, vit_h: sam_vit_h_4b8939.pth); "
    "download one and pass its path with --checkpoint."
)
SETTINGS_FILE = "settings.json"
# Version of the per-frame file layout; a cache written in another layout is refused with a rebuild hint.
CACHE_FORMAT = 2
# Fixed zip timestamp so that the same masks always give the same bytes on disk (np.savez stamps
# the current time, which would make a resumed cache differ from an uninterrupted one).
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError(
            f"A teacher takes an (H, W, 3) uint8 RGB image; got {type(image).__name__} "
            f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}. Convert with (x * 255).round() to uint8."
        )


@dataclass
class MaskSet:
    """The N masks of one frame as the segments they cut it into.

    segments: (H, W) int64, the segment of each pixel, -1 where no mask lies. All pixels of one
    segment are covered by exactly the same masks. membership: (N, S) bool, mask i covers segment s.
    Superpixels partition the frame, so every mask is one segment; SAM's masks overlap, and the
    pixels that masks 3 and 7 both cover form a segment of their own. A mask's pixels are the union
    of its segments, so sums over a mask (eq. 1) and averages over the masks of a pixel (eq. 2)
    become sums over segments: 950 superpixels of a 416 x 608 frame are 240 MB as dense masks and
    about 1 MB here.
    """

    segments: torch.Tensor
    membership: torch.Tensor

    @classmethod
    def from_masks(cls, masks: np.ndarray | torch.Tensor) -> "MaskSet":
        """masks: (N, H, W) bool -> MaskSet of the non-empty ones, in their order."""
        masks = _as_numpy_bool(masks)
        count, height, width = masks.shape
        flat = masks.reshape(count, height * width)
        nonempty = flat.any(axis=1)
        if not nonempty.all():
            flat = flat[nonempty]
        if len(flat) == 0:
            return cls(torch.full((height, width), -1, dtype=torch.int64), torch.zeros(0, 0, dtype=torch.bool))
        mask_ids, pixels = np.nonzero(flat)
        if np.bincount(pixels, minlength=height * width).max() <= 1:
            # A partition (superpixels, oracle regions): mask i is segment i.
            segments = np.full(height * width, -1, dtype=np.int64)
            segments[pixels] = mask_ids
            return cls(torch.from_numpy(segments.reshape(height, width)), torch.eye(len(flat), dtype=torch.bool))
        # A pixel's signature is the bit string of the masks covering it; equal signatures, one segment.
        signatures = np.packbits(flat, axis=0).T
        signatures = np.ascontiguousarray(signatures).view(np.dtype((np.void, signatures.shape[1])))[:, 0]
        unique, inverse = np.unique(signatures, return_inverse=True)
        membership = np.unpackbits(unique.view(np.uint8).reshape(len(unique), -1), axis=1, count=len(flat)).T.astype(bool)
        covered = membership.any(axis=0)
        # Renumber the segments so that uncovered pixels (no mask: the all-zero signature) get -1.
        new_ids = np.where(covered, np.cumsum(covered) - 1, -1)
        segments = new_ids[inverse.reshape(-1)].reshape(height, width)
        return cls(torch.from_numpy(segments.astype(np.int64)), torch.from_numpy(np.ascontiguousarray(membership[:, covered])))

    def __len__(self) -> int:
        return self.membership.shape[0]

    @property
    def num_segments(self) -> int:
        return self.membership.shape[1]

    def segment_areas(self) -> torch.Tensor:
        """(S,) pixel count of every segment."""
        # Uncovered pixels go to an extra bin that is dropped; no boolean indexing, so no GPU sync.
        ids = torch.where(self.segments >= 0, self.segments, self.num_segments).flatten()
        return torch.zeros(self.num_segments + 1, dtype=torch.int64, device=ids.device).index_add_(0, ids, torch.ones_like(ids))[:-1]

    def areas(self) -> torch.Tensor:
        """(N,) pixel count of every mask."""
        return self.membership.to(torch.float32) @ self.segment_areas().to(torch.float32)

    def dense(self) -> torch.Tensor:
        """(N, H, W) bool: the masks themselves (for figures and tests; training never needs them)."""
        # A column of False appended last: segment -1 (no mask) indexes it.
        padded = torch.cat([self.membership, self.membership.new_zeros(len(self), 1)], dim=1)
        return padded[:, self.segments]

    def pin_memory(self) -> "MaskSet":
        """Page-locked copies, so that `to(cuda, non_blocking=True)` overlaps the copy (DataLoader calls it)."""
        return MaskSet(self.segments.pin_memory(), self.membership.pin_memory())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MaskSet":
        return MaskSet(self.segments.to(device, non_blocking=non_blocking),
                       self.membership.to(device, non_blocking=non_blocking))


def _as_numpy_bool(masks: np.ndarray | torch.Tensor) -> np.ndarray:
    array = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) bool; got shape {array.shape}")
    return array.astype(bool, copy=False)


def masks_from_regions(regions: np.ndarray) -> np.ndarray:
    """One mask per region of a label map, largest first.

    regions: (H, W) int, region ids >= 0; negative ids are pixels that belong to no mask.
    Returns masks: (N, H, W) bool, sorted by area (ties by region id), (0, H, W) when empty.
    """
    ids, areas = np.unique(regions[regions >= 0], return_counts=True)
    order = np.argsort(-areas, kind="stable")
    return regions[None] == ids[order][:, None, None]


def sort_by_area(masks: np.ndarray) -> np.ndarray:
    """masks: (N, H, W) bool -> the same masks, largest area first (stable for ties)."""
    areas = masks.reshape(len(masks), -1).sum(1)
    return masks[np.argsort(-areas, kind="stable")]


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """B_SAM: the union of the edges of all masks.

    masks: (N, H, W) bool -> (H, W) bool. A pixel is an edge of a mask when it lies in the mask and
    one of its 4 neighbours does not. Pixels outside the image count as inside the mask, so the
    frame border is not a boundary: it separates no objects.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"boundary_map takes masks of shape (N, H, W); got {masks.shape}")
    interior = masks.copy()
    interior[:, 1:, :] &= masks[:, :-1, :]
    interior[:, :-1, :] &= masks[:, 1:, :]
    interior[:, :, 1:] &= masks[:, :, :-1]
    interior[:, :, :-1] &= masks[:, :, 1:]
    return (masks & ~interior).any(axis=0)


class SamTeacher:
    """Segment Anything's automatic mask generator, frozen.

    The generator settings are segment-anything's own (`SamAutomaticMaskGenerator`); `settings`
    records every one that changes the masks, and the cache refuses to mix settings.
    checkpoint=None builds random weights: the masks are then meaningless (tests and timing only).
    """

    needs_label = False

    def __init__(
        self,
        model_type: str = "vit_b",
        checkpoint: str | None = None,
        device: str = "cpu",
        points_per_side: int = 32,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        min_mask_region_area: int = 0,
        points_per_batch: int = 64,
    ) -> None:
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

        if model_type not in ("vit_b", "vit_l", "vit_h"):
            raise ValueError(f"model_type must be vit_b, vit_l or vit_h; got {model_type!r}")
        if min_mask_region_area > 0:
            try:
                import cv2  # noqa: F401  (segment-anything's small-region cleanup needs OpenCV)
            except ImportError as error:
                raise RuntimeError(
                    "min_mask_region_area > 0 needs OpenCV (pip install opencv-python-headless); "
                    "or keep min_mask_region_area=0."
                ) from error
        model = sam_model_registry[model_type](checkpoint=None)
        if checkpoint is None:
            print(f"WARNING: SamTeacher({model_type}) has random weights (no --checkpoint): its masks are meaningless, use them for tests and timing only.")
        else:
            _load_sam_weights(model, checkpoint, model_type)
        self.model = model.to(device).eval()
        self.generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            min_mask_region_area=min_mask_region_area,
        )
        # points_per_batch and device change speed and memory, not the masks, so they are left out.
        self.settings = {
            "source": "sam",
            "model_type": model_type,
            "checkpoint": os.path.basename(checkpoint) if checkpoint is not None else None,
            "points_per_side": points_per_side,
            "pred_iou_thresh": pred_iou_thresh,
            "stability_score_thresh": stability_score_thresh,
            "min_mask_region_area": min_mask_region_area,
        }

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool at the image's size, largest first."""
        _check_image(image)
        records = self.generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return sort_by_area(np.stack([record["segmentation"] for record in records]).astype(bool))


def _load_sam_weights(model: torch.nn.Module, checkpoint: str, model_type: str) -> None:
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"SAM checkpoint {checkpoint!r} does not exist. {CHECKPOINT_HELP}")
    try:
        state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(f"Cannot read SAM checkpoint {checkpoint!r} ({error.__class__.__name__}: {error}). {CHECKPOINT_HELP}") from error
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise RuntimeError(
            f"SAM checkpoint {checkpoint!r} does not fit model type {model_type!r} "
            f"(pass the matching --model-type, e.g. sam_vit_b_*.pth with vit_b). {CHECKPOINT_HELP}"
        ) from error


class SuperpixelTeacher:
    """Class-agnostic regions from scikit-image, one mask per region: the no-weights stand-in for SAM.

    felzenszwalb (default) is a graph-based segmentation whose regions follow colour edges, so a
    player, the ball or the goal bar becomes a region of its own. Defaults were tuned by eye on
    FSSOD frames at 416 x 608: about 1,000 regions per frame (500-1,400), the ball, players and goal
    bar mostly in regions of their own; coarser settings (scale 300+) merge the ball into the pitch.
    slic gives compact, near-uniform cells.
    Unlike SAM's masks these regions never overlap: they partition the frame.
    """

    needs_label = False

    def __init__(
        self,
        method: str = "felzenszwalb",
        scale: float = 150.0,
        sigma: float = 0.6,
        min_size: int = 25,
        n_segments: int = 400,
        compactness: float = 10.0,
    ) -> None:
        if method == "felzenszwalb":
            self.settings = {"source": "superpixel", "method": method, "scale": scale, "sigma": sigma, "min_size": min_size}
        elif method == "slic":
            self.settings = {"source": "superpixel", "method": method, "n_segments": n_segments, "compactness": compactness, "sigma": sigma}
        else:
            raise ValueError(f"SuperpixelTeacher method must be 'felzenszwalb' or 'slic'; got {method!r}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool, a partition of the frame, largest first."""
        _check_image(image)
        s = self.settings
        if s["method"] == "felzenszwalb":
            regions = felzenszwalb(image, scale=s["scale"], sigma=s["sigma"], min_size=s["min_size"])
        else:
            regions = slic(image, n_segments=s["n_segments"], compactness=s["compactness"], sigma=s["sigma"], start_label=0)
        return masks_from_regions(regions)


class OracleTeacher:
    """Connected components of the ground-truth class regions, class ids dropped. ANALYSIS ONLY.

    This reads the labels, so nothing trained on it is label-free: it bounds what perfect
    class-agnostic masks would give. Components use 8-connectivity so a thin diagonal goal bar
    stays one region; ignored pixels (255) belong to no mask.
    """

    needs_label = True

    def __init__(self, ignore_index: int = 255) -> None:
        self.settings = {"source": "oracle", "ignore_index": ignore_index}

    def __call__(self, image: np.ndarray, label: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8, label: (H, W) int class ids -> masks: (N, H, W) bool, largest first."""
        warnings.warn("OracleTeacher reads ground-truth labels: its masks are for analysis only, never for a label-free result.", stacklevel=2)
        _check_image(image)
        label = np.asarray(label)
        if label.shape != image.shape[:2]:
            raise ValueError(f"OracleTeacher: label shape {label.shape} differs from image shape {image.shape[:2]}")
        return masks_from_regions(connected_regions(label, ignore_index=self.settings["ignore_index"]))


def connected_regions(segmentation: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """(H, W) int class or cluster ids -> (H, W) region ids: one per 8-connected component of each id.

    8-connectivity keeps a thin diagonal goal bar one region; `ignore_index` pixels get -1 (no region).
    """
    regions = np.full(segmentation.shape, -1, dtype=np.int64)
    next_id = 0
    for value in np.unique(segmentation):
        if value == ignore_index:
            continue
        components, count = ndimage.label(segmentation == value, structure=np.ones((3, 3), dtype=bool))
        inside = components > 0
        regions[inside] = components[inside] - 1 + next_id
        next_id += count
    return regions


def absorb_small_regions(regions: np.ndarray, min_size: int) -> np.ndarray:
    """(H, W) region ids >= 0 -> the same map where every region under min_size pixels is taken
    over by its nearest region of at least min_size pixels (scikit-image expand_labels)."""
    ids = regions + 1  # expand_labels grows labels > 0 into the pixels labelled 0
    small = np.bincount(ids.ravel())[ids] < min_size
    if small.all():
        return regions
    ids[small] = 0
    return expand_labels(ids, distance=max(ids.shape)) - 1


class StudentTeacher:
    """Connected components of a trained student's predicted segmentation: masks for a second round.

    Superpixels cut a player into a dozen pieces; a student trained on them (round one) paints the
    player as one or two clusters, so its segmentation, split into connected pieces, gives object
    sized class-agnostic regions without SAM weights. The cluster ids are dropped, like the oracle's
    class ids. A predicted segmentation is speckled (at 416 x 608, thousands of pieces of a few
    pixels per frame), so pieces under min_size pixels join their nearest larger piece: felzenszwalb's
    min_size does the same for superpixels. Only a label-free run may start a round: a checkpoint
    trained with labels (the supervised baseline, a labelled SBM prior, oracle masks) is refused.
    """

    needs_label = False

    def __init__(self, checkpoint: str, device: str = "cpu", min_size: int = 25) -> None:
        from student import trained_student

        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"Round-one checkpoint {checkpoint!r} not found: pass the checkpoint.pt of a finished label-free train.py run.")
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        args = state["args"]
        if args["supervised"] or args.get("sbm_prior") or args["source"] == "oracle":
            raise ValueError(f"Round-one checkpoint {checkpoint!r} was trained with labels (supervised, --sbm-prior or oracle masks): a second round must start from a label-free run.")
        self.student, self.device = trained_student(state, device), device
        self.settings = {"source": "student", "min_size": min_size, "round_one": checkpoint, "round_one_source": args["source"],
                         "round_one_clusters": args["clusters"], "round_one_epochs": state["epoch"] + 1}

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool, a partition of the frame, largest first."""
        _check_image(image)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
        segmentation = self.student(x).argmax(1)[0].cpu().numpy()
        return masks_from_regions(absorb_small_regions(connected_regions(segmentation), self.settings["min_size"]))


Teacher = SamTeacher | SuperpixelTeacher | OracleTeacher | StudentTeacher


def make_teacher(source: str, checkpoint: str | None = None, device: str = "cpu", **settings: Any) -> Teacher:
    """source in SOURCES; checkpoint: SAM's weights ("sam") or round one's checkpoint.pt ("student");
    settings go to the teacher's constructor."""
    if source == "sam":
        return SamTeacher(checkpoint=checkpoint, device=device, **settings)
    if source == "student":
        if checkpoint is None:
            raise ValueError("The student mask source needs round one's checkpoint.pt (train.py --round-one, sam_teacher.py --checkpoint) to build masks.")
        return StudentTeacher(checkpoint, device=device)
    if source not in SOURCES:
        raise ValueError(f"Unknown mask source {source!r}; choose one of {', '.join(SOURCES)}")
    if checkpoint is not None:
        raise ValueError(f"--checkpoint is a SAM checkpoint; the {source!r} source takes none (use --source sam).")
    return SuperpixelTeacher(**settings) if source == "superpixel" else OracleTeacher(**settings)


def teacher_for_run(run_args: dict, device: str = "cpu") -> Teacher:
    """The teacher a train.py run names in its args (its --source, --sam-checkpoint, --round-one)."""
    source = run_args["source"]
    checkpoint = run_args.get("round_one") if source == "student" else run_args.get("sam_checkpoint")
    return make_teacher(source, checkpoint=checkpoint, device=device,
                        **({"model_type": run_args["sam_model"]} if source == "sam" else {}))


def _build_command(cache_dir: str, source: str = "superpixel") -> str:
    return f"python sam_teacher.py --data ../shared/fssod/images --split all --source {source} --out {cache_dir}"


def _frame_path(cache_dir: str, name: str) -> str:
    if os.sep in name or name.startswith("."):
        raise ValueError(f"Frame name {name!r} cannot be a cache file name (it holds a path separator or starts with '.')")
    return os.path.join(cache_dir, name + ".npz")


def missing_frames(cache_dir: str, names: Sequence[str]) -> list[str]:
    """The names among `names` whose masks are not in cache_dir yet (all of them when there is no
    cache): callers build the teacher only when this is not empty, so a complete cache never loads SAM."""
    return [name for name in names if not os.path.isfile(_frame_path(str(cache_dir), name))]


def _write_atomically(path: str, data: bytes) -> None:
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _encode_frame(masks: MaskSet, boundary: np.ndarray) -> bytes:
    """masks: MaskSet, boundary: (H, W) bool -> the bytes of a deterministic .npz."""
    arrays = {
        "shape": np.asarray([len(masks), masks.num_segments, *masks.segments.shape], dtype=np.int64),
        "segments": masks.segments.numpy().astype(np.int32),
        "membership": np.packbits(masks.membership.numpy().reshape(-1)),
        "boundary": np.packbits(boundary.reshape(-1)),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, array, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def _settings_difference(stored: dict, expected: dict, keys: list[str]) -> str:
    missing = "<missing>"
    return "; ".join(
        f"{key}: cache has {stored.get(key, missing)!r}, asked for {expected.get(key, missing)!r}"
        for key in keys
        if stored.get(key, missing) != expected.get(key, missing)
    )


class MaskCache:
    """Reads the masks and boundary maps that `build_cache` wrote.

    expected_settings: keys that the cache's settings.json must hold with these values (for
    example {"source": "superpixel", "image_size": [416, 608]}); any difference is a ValueError.
    load(name) -> masks: MaskSet, boundary B_SAM: (H, W) bool tensor.
    """

    def __init__(self, cache_dir: str, expected_settings: dict | None = None) -> None:
        self.cache_dir = str(cache_dir)
        settings_path = os.path.join(self.cache_dir, SETTINGS_FILE)
        if not os.path.isfile(settings_path):
            raise FileNotFoundError(f"No mask cache at {self.cache_dir!r} (missing {SETTINGS_FILE}). Build it with: {_build_command(self.cache_dir)}")
        with open(settings_path) as file:
            self.settings: dict = json.load(file)
        if self.settings.get("format") != CACHE_FORMAT:
            raise ValueError(f"The mask cache {self.cache_dir!r} was written in an older layout (format {self.settings.get('format', 1)}, "
                             f"this code reads format {CACHE_FORMAT}). Delete the folder and rebuild it with: "
                             f"{_build_command(self.cache_dir, self.settings.get('source', 'superpixel'))}")
        if expected_settings is not None:
            # A round trip through JSON turns tuples into lists, as they are stored.
            expected = json.loads(json.dumps(expected_settings))
            difference = _settings_difference(self.settings, expected, list(expected))
            if difference:
                raise ValueError(f"The mask cache {self.cache_dir!r} was made with other settings ({difference}). Rebuild it with the settings you want, or pass another cache folder.")
        self.names: list[str] = sorted(entry[: -len(".npz")] for entry in os.listdir(self.cache_dir) if entry.endswith(".npz") and not entry.startswith("."))

    def __contains__(self, name: str) -> bool:
        return os.path.isfile(_frame_path(self.cache_dir, name))

    def __len__(self) -> int:
        return len(self.names)

    def load(self, name: str) -> tuple[MaskSet, torch.Tensor]:
        """name: frame name (e.g. "Frame 1  (11).jpg") -> (masks: MaskSet, boundary B_SAM: (H, W) bool)."""
        path = _frame_path(self.cache_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Frame {name!r} is not in the mask cache {self.cache_dir!r} ({path} is missing). Build it with: {_build_command(self.cache_dir, self.settings.get('source', 'superpixel'))}")
        with np.load(path, allow_pickle=False) as stored:
            count, num_segments, height, width = (int(v) for v in stored["shape"])
            membership = np.unpackbits(stored["membership"], count=count * num_segments).reshape(count, num_segments)
            masks = MaskSet(torch.from_numpy(stored["segments"].astype(np.int64)), torch.from_numpy(membership.astype(bool)))
            boundary = np.unpackbits(stored["boundary"], count=height * width).reshape(height, width).astype(bool)
        return masks, torch.from_numpy(boundary)


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
    settings = dict(teacher.settings, image_size=[int(s) for s in first["image"].shape[-2:]], format=CACHE_FORMAT)
    settings_path = os.path.join(out_dir, SETTINGS_FILE)
    if os.path.isfile(settings_path):
        with open(settings_path) as file:
            stored = json.load(file)
        if stored != settings:
            difference = _settings_difference(stored, settings, sorted(set(stored) | set(settings)))
            raise ValueError(f"The mask cache {out_dir!r} was made with other settings ({difference}). Pass another --out or delete the folder.")
    else:
        _write_atomically(settings_path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())

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
            raise ValueError(f"Frame {item['name']!r} is {image.shape[:2]}, the cache holds {settings['image_size']} frames: resize all frames to one size.")
        if teacher.needs_label:
            if "label" not in item:
                raise ValueError("The oracle teacher needs labels: build the dataset with labels=True (only for analysis).")
            label = item["label"]
            masks = teacher(image, label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label))
        else:
            masks = teacher(image)
        _write_atomically(path, _encode_frame(MaskSet.from_masks(masks), boundary_map(masks)))
    return MaskCache(out_dir, expected_settings=settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Precompute the teacher's masks and boundary maps into a cache folder (paper section 2.1).")
    parser.add_argument("--data", required=True, help="folder of FSSOD frames (e.g. ../shared/fssod/images), or 'synthetic'")
    parser.add_argument("--split", choices=("train", "test", "all"), default="train", help="FSSOD split (ignored for synthetic data)")
    parser.add_argument("--source", choices=SOURCES, default="sam", help="sam (needs --checkpoint), superpixel (no weights), oracle (reads labels: analysis only), student (--checkpoint: a finished label-free train.py run)")
    parser.add_argument("--checkpoint", default=None, help="SAM checkpoint file, e.g. sam_vit_b_01ec64.pth (without it SAM has random weights); with --source student, round one's RUN/checkpoint.pt")
    parser.add_argument("--model-type", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--points-per-side", type=int, default=32, help="SAM's prompt grid is points_per_side^2 points")
    parser.add_argument("--size", type=int, nargs=2, default=(416, 608), metavar=("H", "W"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="cache folder")
    parser.add_argument("--num-synthetic", type=int, default=64, help="number of frames with --data synthetic")
    args = parser.parse_args(argv)

    from data import FSSOD, SyntheticScenes

    source = args.source
    size = tuple(args.size)
    if args.data == "synthetic":
        dataset = SyntheticScenes(args.num_synthetic, size=size, seed=0, labels=(source == "oracle"))
    else:
        dataset = FSSOD(args.data, split=args.split, size=size, labels=(source == "oracle"))
    settings = {"model_type": args.model_type, "points_per_side": args.points_per_side} if source == "sam" else {}
    teacher = make_teacher(source, checkpoint=args.checkpoint, device=args.device, **settings)
    cache = build_cache(dataset, teacher, args.out)
    print(f"{len(cache)} frames cached in {args.out} ({source} masks)", file=sys.stderr)


if __name__ == "__main__":
    main()
