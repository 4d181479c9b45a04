"""Regions without SAM: class-agnostic masks from sources that need no SAM weights.

SAM's checkpoints cannot be downloaded on every machine (ours included), so the teacher's masks
M_1..M_N (paper section 2.1, sam_teacher.py) also come from three sources that need none, each
returning masks in SAM's form, (N, H, W) bool, largest first:
- "boundary", the default: object-level regions cut along the edges of PiDiNet (pidinet.py), a small
  class-agnostic edge detector trained on natural-image boundaries (BSDS500), no football data.
  Label-free, so its results are headline numbers, labelled "PiDiNet regions" rather than SAM.
- "superpixel": scikit-image's felzenszwalb regions (about 1,000 a frame, far below object level).
- "oracle": connected components of the ground-truth class regions with the class ids dropped. It
  reads labels, so it is for analysis only: an upper bound on what perfect SAM masks would give.
Each teacher's `settings` are stored with its cache (sam_teacher.py), which refuses to mix them.
"""
import os
import warnings
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from skimage import color, graph, measure, morphology, segmentation
from skimage.segmentation import felzenszwalb

from engineering.files import check_rgb_image


def masks_from_regions(regions: np.ndarray) -> np.ndarray:
    """One mask per region of a label map, largest first.

    regions: (H, W) int, region ids >= 0; negative ids are pixels that belong to no mask.
    Returns masks: (N, H, W) bool, sorted by area (ties by region id), (0, H, W) when empty.
    """
    ids, areas = np.unique(regions[regions >= 0], return_counts=True)
    order = np.argsort(-areas, kind="stable")
    return regions[None] == ids[order][:, None, None]



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
        check_rgb_image(image)
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
        from stand_ins.pidinet import DEFAULT_WEIGHTS, load_pidinet

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
        check_rgb_image(image)
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
        check_rgb_image(image)
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
