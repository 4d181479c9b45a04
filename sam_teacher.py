"""The SAM teacher: class-agnostic masks M_1..M_N (paper section 2.1).

SoccerSAM starts by running a frozen Segment Anything Model (SAM) over every unlabeled training
frame x (416 x 608 x 3). SAM's automatic mask generator prompts it with a grid of points and keeps
the confident, stable answers: a set of instance masks {M_i}, i = 1..N, that carry structure but no
class. The Semantic Bridging Module later gives each mask class logits (eqs. 1-2, sbm.py); this file
only produces the masks. The paper also names SAM's boundary map B_SAM, but its eq. 3 asks the student
for the edges of the SBM's map, B_SBM (losses.py); B_SAM as eq. 3's target was measured no better and
is not computed (RESULTS.md, "Tried and dropped").

SAM is frozen, so its masks never change during training: we compute them once per frame and store
them in a cache folder (one `<frame name>.npz` per frame, written atomically, so an interrupted build
resumes where it stopped). A frame's masks are stored as a `MaskSet`: the pieces (segments) the masks
cut the frame into, and which mask covers which piece. That form is 200x smaller than N dense masks and
lets the SBM compute eqs. 1 and 2 once per segment. Training reads the cache through `MaskCache` and
never loads SAM. Four mask sources fill the cache, and every result must say which one it used:
- "sam": segment-anything with an official checkpoint, the paper's teacher.
- "boundary": our stand-in when no SAM checkpoint is at hand, and the default: object-level regions
  cut along the edges of PiDiNet (pidinet.py), a small class-agnostic edge detector trained on
  natural-image boundaries (BSDS500), no football data. Label-free, so its results are headline
  numbers, labelled "PiDiNet regions" rather than SAM.
- "superpixel": scikit-image's felzenszwalb regions (about 1,000 a frame, far below object level);
  label-free, the stand-in of earlier sessions.
- "oracle": connected components of the ground-truth class regions with the class ids dropped. It
  reads labels, so it is for analysis only: an upper bound on what perfect SAM masks would give.

Build a cache (train.py's default folder for these frames and this source):
    python sam_teacher.py --data ../shared/fssod --source boundary --out cache/fssod-boundary-416x608
"""
import argparse
import io
import json
import math
import os
import sys
import traceback
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage import color, graph, measure, morphology, segmentation
from skimage.segmentation import felzenszwalb
from tqdm import tqdm

SOURCES = ("sam", "boundary", "superpixel", "oracle")
CHECKPOINT_HELP = (
    "The official SAM checkpoints are listed at "
    "https://github.com/facebookresearch/segment-anything#model-checkpoints "
    "(vit_b: sam_vit_b_01ec64.pth, vit_l: sam_vit_l_0b3195.pth, vit_h: sam_vit_h_4b8939.pth); "
    "download one and pass its path with --sam-checkpoint."
)
# SAM sees every image with its longest side at 1024 pixels (segment-anything's ResizeLongestSide).
SAM_INPUT_SIZE = 1024
SETTINGS_FILE = "settings.json"
# Version of the per-frame file layout; a cache written in another layout is refused with a rebuild hint.
CACHE_FORMAT = 3
# Fixed zip timestamp so that the same masks always give the same bytes on disk (np.savez stamps
# the current time, which would make a resumed cache differ from an uninterrupted one).
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8):
        raise ValueError(
            f"A teacher takes an (H, W, 3) uint8 RGB image; got {type(image).__name__} "
            f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}. Convert with (x * 255).round() "
            "to uint8."
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
            return cls(torch.full((height, width), -1, dtype=torch.int64),
                       torch.zeros(0, 0, dtype=torch.bool))
        mask_ids, pixels = np.nonzero(flat)
        if np.bincount(pixels, minlength=height * width).max() <= 1:
            # A partition (superpixels, oracle regions): mask i is segment i.
            segments = np.full(height * width, -1, dtype=np.int64)
            segments[pixels] = mask_ids
            return cls(torch.from_numpy(segments.reshape(height, width)),
                       torch.eye(len(flat), dtype=torch.bool))
        # A pixel's signature is the bit string of the masks covering it; equal signatures, one segment.
        signatures = np.packbits(flat, axis=0).T
        signatures = np.ascontiguousarray(signatures).view(np.dtype((np.void, signatures.shape[1])))[:, 0]
        unique, inverse = np.unique(signatures, return_inverse=True)
        membership = np.unpackbits(unique.view(np.uint8).reshape(len(unique), -1), axis=1,
                                   count=len(flat)).T.astype(bool)
        covered = membership.any(axis=0)
        # Renumber the segments so that uncovered pixels (no mask: the all-zero signature) get -1.
        new_ids = np.where(covered, np.cumsum(covered) - 1, -1)
        segments = new_ids[inverse.reshape(-1)].reshape(height, width)
        return cls(torch.from_numpy(segments.astype(np.int64)),
                   torch.from_numpy(np.ascontiguousarray(membership[:, covered])))

    def __len__(self) -> int:
        return self.membership.shape[0]

    @property
    def num_segments(self) -> int:
        return self.membership.shape[1]

    def segment_areas(self) -> torch.Tensor:
        """(S,) pixel count of every segment."""
        # Uncovered pixels go to an extra bin that is dropped; no boolean indexing, so no GPU sync.
        ids = torch.where(self.segments >= 0, self.segments, self.num_segments).flatten()
        counts = torch.zeros(self.num_segments + 1, dtype=torch.int64, device=ids.device)
        return counts.index_add_(0, ids, torch.ones_like(ids))[:-1]

    def areas(self) -> torch.Tensor:
        """(N,) pixel count of every mask."""
        return self.membership.to(torch.float32) @ self.segment_areas().to(torch.float32)

    def dense(self) -> torch.Tensor:
        """(N, H, W) bool: the masks themselves (for figures and tests; training never needs them)."""
        # A column of False appended last: segment -1 (no mask) indexes it.
        padded = torch.cat([self.membership, self.membership.new_zeros(len(self), 1)], dim=1)
        return padded[:, self.segments]

    def pin_memory(self) -> "MaskSet":
        """Page-locked copies, so that `to(cuda, non_blocking=True)` overlaps the copy (DataLoader
        calls it)."""
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


class SamImageEncoder(torch.nn.Module):
    """SAM's ViT image encoder as the SBM's frozen backbone F (train.py's `--sbm-backbone sam`), the
    paper's reading: (B, 3, H, W) in [0, 1] -> [(B, 256, H / 16, W / 16)]."""

    def __init__(self, checkpoint: str | None):
        super().__init__()
        if checkpoint is None:
            raise FileNotFoundError("--sbm-backbone sam needs --sam-checkpoint PATH to a segment-anything "
                                    "checkpoint (e.g. sam_vit_b_01ec64.pth), or use --sbm-backbone "
                                    "efficientnet_lite0")
        sam = load_sam(checkpoint)
        self.image_encoder = sam.image_encoder
        self.register_buffer("mean", sam.pixel_mean.view(1, 3, 1, 1) / 255, persistent=False)
        self.register_buffer("std", sam.pixel_std.view(1, 3, 1, 1) / 255, persistent=False)
        self.channels = [256]
        self.weights_description = f"SAM {sam.model_type} image encoder from {os.path.basename(checkpoint)}"

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        height, width = images.shape[-2:]
        # SAM sees the frame as it was trained: longest side 1024, padded bottom-right to a square.
        scale = SAM_INPUT_SIZE / max(height, width)
        resized_h, resized_w = round(height * scale), round(width * scale)
        x = F.interpolate(images, size=(resized_h, resized_w), mode="bilinear", align_corners=False)
        padding = (0, SAM_INPUT_SIZE - resized_w, 0, SAM_INPUT_SIZE - resized_h)
        x = F.pad((x - self.mean) / self.std, padding)
        embedding = self.image_encoder(x)
        grid = embedding.shape[-1] / SAM_INPUT_SIZE
        embedding = embedding[..., : math.ceil(resized_h * grid), : math.ceil(resized_w * grid)]
        size = (height // 16, width // 16)
        return [F.interpolate(embedding, size=size, mode="bilinear", align_corners=False)]


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
        _check_image(image)
        records = self.generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return sort_by_area(np.stack([record["segmentation"] for record in records]).astype(bool))


class SuperpixelTeacher:
    """scikit-image's felzenszwalb regions, one mask per region: a stand-in for SAM without weights.

    felzenszwalb is a graph-based segmentation whose regions follow colour edges, so a player, the
    ball or the goal bar becomes a region of its own, but so does every shadow and stripe: about 1,000
    regions a frame (500-1,400) at 416 x 608 with these settings (tuned by eye on FSSOD; coarser
    settings, scale 300+, merge the ball into the pitch). Unlike SAM's masks they never overlap.
    """

    needs_label = False

    def __init__(self, scale: float = 150.0, sigma: float = 0.6, min_size: int = 25) -> None:
        self.settings = {"source": "superpixel", "method": "felzenszwalb", "scale": scale, "sigma": sigma,
                         "min_size": min_size}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool, a partition of the frame, largest first."""
        _check_image(image)
        s = self.settings
        regions = felzenszwalb(image, scale=s["scale"], sigma=s["sigma"], min_size=s["min_size"])
        return masks_from_regions(regions)


BOUNDARY_REGION_DEFAULTS = {"h": 0.01, "colour_weight": 2.0, "threshold": 0.6}


def boundary_regions(image: np.ndarray, edges: np.ndarray, h: float = 0.01, colour_weight: float = 2.0,
                     threshold: float = 0.6) -> np.ndarray:
    """A hierarchical watershed of the edge map whose merge cost also weighs the regions' colours.

    1. Basins: the watershed of `edges` from its h-minima (a fine over-segmentation, 200-700 basins a
       416x608 frame at h=0.01).
    2. Merge: skimage.graph.merge_hierarchical joins the cheapest adjacent pair of regions until no pair
       costs less than `threshold`, where cost = depth of the weakest edge between the two (the lowest
       pass over the edge map between them, minus the higher of their two minima) + colour_weight *
       (distance of their mean CIELAB colours) / 100.
    With colour_weight=0 this is exactly the watershed from the h-minima at h=threshold; the colour term
    keeps thin objects of their own colour (goal bar, ball) apart from what surrounds them.

    image: (H, W, 3) uint8 RGB; edges: (H, W) float edge probability in [0, 1]
    -> (H, W) int64 region ids 0..K-1.
    """
    edges = np.asarray(edges, dtype=np.float64)
    markers = measure.label(morphology.h_minima(edges, h), connectivity=2)
    if markers.max() == 0:  # a flat edge map has no minimum: one region
        return np.zeros(edges.shape, dtype=np.int64)
    basins = segmentation.watershed(edges, markers)  # ids 1..N
    n = basins.max() + 1

    # Lowest pass between 8-adjacent basins u < v: min over adjacent pixel pairs of the higher edge value.
    keys, heights = [], []
    head, tail, all_ = slice(0, -1), slice(1, None), slice(None)
    for p, q in (((all_, head), (all_, tail)), ((head, all_), (tail, all_)),
                 ((head, head), (tail, tail)), ((head, tail), (tail, head))):
        u, v = basins[p], basins[q]
        cut = u != v
        keys.append(np.minimum(u[cut], v[cut]) * n + np.maximum(u[cut], v[cut]))
        heights.append(np.maximum(edges[p][cut], edges[q][cut]))
    keys, pair = np.unique(np.concatenate(keys), return_inverse=True)
    passes = ndimage.minimum(np.concatenate(heights), pair, np.arange(len(keys)))

    lab = color.rgb2lab(image).reshape(-1, 3)
    index = basins.ravel()
    lab_sums = np.stack([np.bincount(index, lab[:, c], minlength=n) for c in range(3)], 1)
    pixels = np.bincount(index, minlength=n)
    lows = ndimage.minimum(edges, basins, np.arange(n))
    rag = graph.RAG()
    for basin in range(1, n):
        rag.add_node(basin, labels=[basin], lab=lab_sums[basin], pixels=pixels[basin], low=lows[basin])

    def cost(a: int, b: int, lowest_pass: float) -> float:
        x, y = rag.nodes[a], rag.nodes[b]
        colour = np.linalg.norm(x["lab"] / x["pixels"] - y["lab"] / y["pixels"]) / 100
        return lowest_pass - max(x["low"], y["low"]) + colour_weight * colour

    for key, lowest_pass in zip(keys.tolist(), passes):
        a, b = divmod(key, n)
        rag.add_edge(a, b, saddle=lowest_pass, weight=cost(a, b, lowest_pass))

    def merge(rag: graph.RAG, src: int, dst: int) -> None:  # src joins dst (before the edges are redone)
        x, y = rag.nodes[src], rag.nodes[dst]
        y["lab"], y["pixels"] = y["lab"] + x["lab"], y["pixels"] + x["pixels"]
        y["low"] = min(y["low"], x["low"])

    def reweigh(rag: graph.RAG, src: int, dst: int, neighbour: int) -> dict:
        lowest_pass = min(rag[node][neighbour]["saddle"] for node in (src, dst) if neighbour in rag[node])
        return {"saddle": lowest_pass, "weight": cost(dst, neighbour, lowest_pass)}

    merged = graph.merge_hierarchical(basins, rag, threshold, rag_copy=False, in_place_merge=True,
                                      merge_func=merge, weight_func=reweigh)
    return merged.astype(np.int64)


class BoundaryTeacher:
    """Object-level class-agnostic regions without SAM: the frame cut along PiDiNet's edges.

    PiDiNet (pidinet.py) draws the boundaries a person would draw in a natural image (trained on
    BSDS500, no football data): strong on a player's outline or the board's edge, weak across the
    grass stripes and shadows that felzenszwalb alone cuts at. `boundary_regions` turns that edge map
    into regions. The edge network runs once per frame, when the cache is built.
    """

    needs_label = False

    def __init__(self, device: str = "cpu", weights: str | None = None, **region_settings: Any) -> None:
        from pidinet import DEFAULT_WEIGHTS, load_pidinet

        weights = str(weights or DEFAULT_WEIGHTS)
        self.network, self.device = load_pidinet(weights, device), device
        self.region_settings = {**BOUNDARY_REGION_DEFAULTS, **region_settings}
        self.settings = {"source": "boundary", "edges": os.path.basename(weights), **self.region_settings}

    @torch.no_grad()
    def edges(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> (H, W) float32 edge probability in [0, 1]."""
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
        return self.network(x)[0, 0].float().cpu().numpy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB -> masks: (N, H, W) bool, a partition of the frame, largest first."""
        _check_image(image)
        return masks_from_regions(boundary_regions(image, self.edges(image), **self.region_settings))


class OracleTeacher:
    """Connected components of the ground-truth class regions, class ids dropped. ANALYSIS ONLY.

    This reads the labels, so nothing trained on it is label-free: it bounds what perfect
    class-agnostic masks would give. Components use 8-connectivity so a thin diagonal goal bar
    stays one region; ignored pixels (255, and black annotation gaps) belong to no mask.
    """

    needs_label = True

    def __init__(self, ignore_index: int = 255) -> None:
        self.settings = {"source": "oracle", "ignore_index": ignore_index}

    def __call__(self, image: np.ndarray, label: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8, label: (H, W) int class ids -> masks: (N, H, W) bool, largest first."""
        warnings.warn("OracleTeacher reads ground-truth labels: its masks are for analysis only, never for a "
                      "label-free result.", stacklevel=2)
        _check_image(image)
        label = np.asarray(label)
        if label.shape != image.shape[:2]:
            raise ValueError(f"OracleTeacher: label shape {label.shape} differs from "
                             f"image shape {image.shape[:2]}")
        return masks_from_regions(connected_regions(label, ignore_index=self.settings["ignore_index"]))


def connected_regions(segmentation: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """(H, W) int class ids -> (H, W) region ids: one per 8-connected component of each id.

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
    return f"python sam_teacher.py --data ../shared/fssod --source {source} --out {cache_dir}"


def _frame_path(cache_dir: str, name: str) -> str:
    if os.sep in name or name.startswith("."):
        raise ValueError(f"Frame name {name!r} cannot be a cache file name (it holds a path "
                         "separator or starts with '.')")
    return os.path.join(cache_dir, name + ".npz")


def missing_frames(cache_dir: str, names: Sequence[str]) -> list[str]:
    """The names among `names` whose masks are not in cache_dir yet (all of them when there is no
    cache): callers build the teacher only when this is not empty, so a complete cache never loads SAM."""
    return [name for name in names if not os.path.isfile(_frame_path(str(cache_dir), name))]


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it: a kill never leaves half a file.
    Used for every file the project writes that later work depends on (cache, checkpoints, results)."""
    path = str(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _encode_frame(masks: MaskSet) -> bytes:
    """masks: MaskSet -> the bytes of a deterministic .npz."""
    arrays = {
        "shape": np.asarray([len(masks), masks.num_segments, *masks.segments.shape], dtype=np.int64),
        "segments": masks.segments.numpy().astype(np.int32),
        "membership": np.packbits(masks.membership.numpy().reshape(-1)),
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
        with np.load(path, allow_pickle=False) as stored:
            count, num_segments = (int(v) for v in stored["shape"][:2])
            membership = np.unpackbits(stored["membership"], count=count * num_segments)
            membership = membership.reshape(count, num_segments)
            return MaskSet(torch.from_numpy(stored["segments"].astype(np.int64)),
                           torch.from_numpy(membership.astype(bool)))


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
        write_atomically(path, _encode_frame(MaskSet.from_masks(masks)))
    return MaskCache(out_dir, expected_settings=settings)


def check_size(size: Sequence[int]) -> None:
    """Refuse a frame size the student cannot take, before any cache or run folder is made: H and W
    positive multiples of 32 (its encoder downsamples 32x)."""
    if len(size) != 2 or any(side <= 0 or side % 32 for side in size):
        raise ValueError(f"--size {' '.join(map(str, size))}: H and W must be positive multiples of 32, "
                         "e.g. 416 608 (the paper's) or 224 320")


def report_user_errors(main: Callable[[], Any]) -> None:
    """Run a command's `main`. A FileNotFoundError or ValueError raised by this project's own checks is
    a mistake the user can fix: it is printed as one line and the command exits with status 1. Anything
    else, or raised inside a library, is a bug and keeps its traceback."""
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        origin = Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve().parent
        if origin != Path(__file__).resolve().parent:
            raise
        sys.exit(f"error: {error}")


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
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="cache folder")
    args = parser.parse_args(argv)
    check_size(args.size)

    from data import open_dataset

    dataset = open_dataset(args.data, args.split, tuple(args.size), labels=args.source == "oracle")
    teacher = make_teacher(args.source, args.sam_checkpoint, args.device)
    cache = build_cache(dataset, teacher, args.out)
    print(f"{len(cache)} frames cached in {args.out} ({args.source} masks)", file=sys.stderr)


if __name__ == "__main__":
    report_user_errors(main)
