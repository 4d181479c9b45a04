"""Semantic Bridging Module (SBM), paper section 2.2: eq. 1 (masked average pooling) and eq. 2
(ensemble pseudo logits), with a label-free classifier. Needs beside it: mask_set.py (the MaskSet type).

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

SAM cuts a frame into class-agnostic masks M_1..M_N. The SBM gives each mask class logits: it pools a
dense feature map F over the mask (eq. 1), runs a light classifier on the pooled vector v_i, and
paints every mask's logits l_i back onto its pixels, averaging where masks overlap (eq. 2). The
result, the ensemble pseudo logit map y_hat (C, H, W), supervises the student. F is a frozen
pretrained backbone ("a frozen backbone" with "pretrained semantic priors", in the paper's words),
handed to the SBM ready-made: models.py's `build_sbm` picks EfficientNet-Lite0 or SAM's image encoder.

The paper says its SBM "adopts a lightweight architecture similar to MobileNet-UNet" (section 3.1) and
does not say how it learns classes without labels, and no label may teach it here. Ours is a frozen
MobileNet-class encoder for F (no decoder: eq. 1 pools it) and a cosine classifier over K prototypes,
one per cluster, that start as spherical k-means centres of the region embeddings of all training
frames (`start_prototypes`): label-free, and on frozen pretrained features already the strongest naive
floor among the naive label-free floors we measured (RESULTS.md). After that start the prototypes are
the SBM's trainable part, updated by the paper's second AdamW (section 3.1) from the one signal the
paper gives it, the student's eq. 4 (train.py). The clusters are named only at evaluation, by
Hungarian matching (evaluate.py).

F is frozen and a frame's masks never change, so a frame's v_i (eq. 1) are constants of a run:
train.py computes them once per frame and each step runs only the classifier and eq. 2
(`pseudo_logits`). The masks arrive as a `MaskSet`: the segments they cut the frame into and which mask
covers which segment. Eqs. 1 and 2 are sums over masks' pixels and averages over a pixel's masks, so
both are computed once per segment and never touch N dense (H, W) masks. The first two functions below
are eqs. 1 and 2 exactly as the paper writes them, on dense masks: read them first; the fast forms after
them compute the same (a test checks it).
"""

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mask_set import MaskSet

# The temperature of the classifier's cosine logits: it sets how sharp softmax(y_hat), eq. 4's
# target, is, not its argmax. A 5x sharper y_hat (0.02) was measured and lowered every row.
LABEL_TEMPERATURE = 0.1
# k-means weights each region by area ** AREA_POWER: 0 would treat the ball like the pitch, 1 would
# let the pitch's thousands of pixels own most clusters.
AREA_POWER = 0.5


def masked_average_pool_dense(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """eq. 1 as the paper writes it: v_i = 1/|M_i| * sum_{p in M_i} F(p), the mean feature over a mask.

    features: (D, H, W), F at the masks' size; masks: (N, H, W) bool -> (N, D). The textbook form, one
    dense mask at a time; `masked_average_pool` computes the same once per segment.
    """
    weights = masks.flatten(1).to(features.dtype)  # (N, H * W): 1 on the mask's pixels
    return weights @ features.flatten(1).T / weights.sum(dim=1, keepdim=True).clamp(min=1)


def ensemble_pseudo_logits_dense(mask_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """eq. 2 as the paper writes it: y_hat(p) = 1/|J_p| * sum_{i in J_p} l_i, J_p = {i | p in M_i}.

    Each mask's logits l_i painted on its pixels, averaged over the masks that cover p; a pixel no mask
    covers gets zero logits. mask_logits: (N, C); masks: (N, H, W) bool -> y_hat (C, H, W). The textbook
    form; `ensemble_pseudo_logits` computes the same once per segment.
    """
    painted = torch.einsum("nc,nhw->chw", mask_logits, masks.to(mask_logits.dtype))  # sum over i in J_p
    return painted / masks.sum(dim=0).clamp(min=1)  # divided by |J_p|


def segment_cell_counts(masks: MaskSet, grid: tuple[int, int]) -> torch.Tensor:
    """How many pixels of each segment lie in each cell of F's coarser (h, w) grid.

    masks: MaskSet on (H, W) -> (S, h * w) float; a cell spans ceil(H / h) x ceil(W / w) pixels.
    Built by one scatter over the pixels, with no host-device synchronisation: uncovered pixels
    are counted in an extra bin that is dropped.
    """
    (h, w), (height, width) = grid, masks.segments.shape
    block_h, block_w = -(-height // h), -(-width // w)
    device, bins = masks.segments.device, masks.num_segments * h * w
    rows = torch.arange(height, device=device) // block_h
    cells = rows[:, None] * w + torch.arange(width, device=device) // block_w
    pairs = torch.where(masks.segments >= 0, masks.segments * (h * w) + cells, bins).flatten()
    counts = torch.zeros(bins + 1, device=device).index_add_(0, pairs, torch.ones(pairs.shape, device=device))
    return counts[:-1].view(masks.num_segments, h * w)


def masked_average_pool(features: torch.Tensor, masks: MaskSet,
                        cell_counts: torch.Tensor | None = None) -> torch.Tensor:
    """eq. 1, masked average pooling, fast form: v_i = 1/|M_i| * sum_{p in M_i} F(p).

    One region embedding per mask: the mean feature over the mask's pixels. A mask's pixels are
    its segments' pixels, so F is summed once per segment and the segment sums are added up per
    mask. F may be coarser than the masks (stride 8): a pixel then takes the feature of the cell
    it lies in, which is eq. 1 on F upsampled by nearest neighbour, and a small mask (the ball)
    keeps the features of the cells it touches.
    features: (D, h, w); masks: MaskSet of N masks on (H, W); cell_counts: `segment_cell_counts`
    of these masks on this grid, when the caller pools several feature maps -> (N, D).
    """
    if cell_counts is None:
        cell_counts = segment_cell_counts(masks, features.shape[-2:])
    segment_sums = cell_counts.to(features.dtype) @ features.flatten(1).T
    membership = masks.membership.to(features.dtype)
    # MaskSet.from_masks drops empty masks; a hand-made empty one pools to zero instead of dividing by zero.
    areas = (membership @ cell_counts.sum(dim=1).to(features.dtype)).clamp(min=1)
    return membership @ segment_sums / areas[:, None]


def ensemble_pseudo_logits(mask_logits: torch.Tensor, masks: MaskSet) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. 2, ensemble pseudo logits, fast form: y_hat(p) = 1/|J_p| * sum_{i in J_p} l_i,
    J_p = {i | p in M_i}.

    Each mask's logits painted on its pixels, averaged where masks overlap. All pixels of a
    segment share J_p, so the average is taken once per segment and then painted.
    mask_logits: (N, C); masks: MaskSet on (H, W) -> (y_hat (C, H, W), covered (H, W) bool).
    Pixels no mask covers get zero logits and covered False, so losses can skip them.
    """
    membership = masks.membership.to(mask_logits.dtype)
    segment_logits = membership.T @ mask_logits / membership.sum(dim=0).clamp(min=1)[:, None]
    # A zero row appended last, for the pixels no mask covers (segment -1). index_select rather than
    # indexing: its gradient is summed in a fixed order on a CPU, so a run does not depend on thread timing.
    segment_logits = torch.cat([segment_logits, segment_logits.new_zeros(1, mask_logits.shape[1])])
    covered = masks.segments >= 0
    ids = torch.where(covered, masks.segments, masks.num_segments).flatten()
    painted = segment_logits.index_select(0, ids).view(*masks.segments.shape, -1)  # (H, W, C)
    return painted.permute(2, 0, 1), covered


def cluster_means(points: torch.Tensor, weights: torch.Tensor, assignment: torch.Tensor,
                  k: int) -> torch.Tensor:
    """Weighted mean direction of each cluster's points, as unit vectors.

    points: (R, D) unit vectors; weights: (R,) >= 0; assignment: (R,) ints in 0..k-1 -> (k, D).
    A cluster without points keeps a zero row (its cosine score is 0 for every region).
    """
    one_hot = F.one_hot(assignment, k).to(points.dtype) * weights[:, None].to(points.dtype)
    return F.normalize(one_hot.T @ points, dim=1)


@torch.no_grad()
def spherical_kmeans(points: torch.Tensor, weights: torch.Tensor, k: int, iters: int = 30,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means on the unit sphere (cosine similarity), k-means++ seeding, each point weighted.

    k-means++ (Arthur and Vassilvitskii, 2007) draws each new centre with probability proportional to
    the squared distance to the nearest centre chosen so far, times the point's weight here. Between
    unit vectors the squared Euclidean distance is ||x - c||^2 = 2 (1 - cos(x, c)), so 1 - cos is that
    squared distance up to a constant factor, which the draw normalises away.
    points: (R, D); weights: (R,) >= 0 -> centroids (k, D) unit vectors.
    """
    if points.shape[0] < k:
        raise ValueError(f"k-means needs at least k = {k} regions, got {points.shape[0]}: use more "
                         "frames or fewer clusters")
    points, weights = F.normalize(points.float(), dim=1), weights.float()

    def sample(probabilities: torch.Tensor) -> int:
        return int(torch.multinomial(probabilities.cpu(), 1, generator=generator))

    centroids = points[[sample(weights)]]
    for _ in range(k - 1):
        squared_distance = (1 - (points @ centroids.T).max(dim=1).values).clamp(min=0)  # / 2
        centroids = torch.cat([centroids, points[[sample(squared_distance * weights + 1e-12)]]])
    for _ in range(iters):
        centroids = cluster_means(points, weights, (points @ centroids.T).argmax(dim=1), k)
    return centroids


class SemanticBridgingModule(nn.Module):
    """SBM: frozen backbone -> F; eq. 1 per mask; cosine prototype classifier -> l_i (K clusters);
    eq. 2 -> y_hat. The K prototypes are its only trainable part; `start_prototypes` places them.

    backbone: any pretrained network, frozen here, that maps images (B, 3, H, W) in [0, 1] to a list of
    feature maps and tells their `channels` and its `weights_description` (models.py's `build_sbm` picks
    one); feature_levels: the maps that F concatenates, finest first.
    """

    def __init__(self, backbone: nn.Module, feature_levels: Sequence[int], num_clusters: int = 11):
        super().__init__()
        self.num_clusters, self.feature_levels = num_clusters, list(feature_levels)
        self.backbone = backbone.requires_grad_(False).eval()
        self.weights_description = backbone.weights_description
        feature_dim = sum(self.backbone.channels[level] for level in self.feature_levels)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_clusters, feature_dim), dim=1))

    def train(self, mode: bool = True) -> "SemanticBridgingModule":
        """The frozen backbone stays in eval mode: its BatchNorm statistics must not drift."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """F: the frozen backbone's levels, each a unit vector per pixel, upsampled to the finest one and
        concatenated.

        Normalising each level stops the 320 channels at stride 32 from outweighing the 40 at stride 8 in
        every cosine similarity. images: (B, 3, H, W) in [0, 1] -> (B, sum of level channels, h, w).
        """
        levels = self.backbone(images)
        levels = [F.normalize(levels[level].float(), dim=1) / math.sqrt(len(self.feature_levels))
                  for level in self.feature_levels]
        size = levels[0].shape[-2:]
        return torch.cat([F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                          if x.shape[-2:] != size else x for x in levels], dim=1)

    @torch.no_grad()
    def region_embeddings(self, images: torch.Tensor, masks: list[MaskSet]) -> list[torch.Tensor]:
        """v_i (eq. 1) of every mask of every image: images (B, 3, H, W); masks[b]: MaskSet of N_b masks
        -> [(N_b, D)]. Nothing here trains: F is frozen and eq. 1 has no parameters."""
        if len(masks) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {len(masks)} mask sets")
        return [masked_average_pool(f, m) for f, m in zip(self.dense_features(images), masks)]

    def classify(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The light classifier: l_i = cos(v_i, prototype_k) / LABEL_TEMPERATURE. (N, D) -> (N, K)."""
        cosines = F.normalize(embeddings, dim=1) @ F.normalize(self.prototypes, dim=1).T
        return cosines / LABEL_TEMPERATURE

    def pseudo_logits(self, embeddings: list[torch.Tensor],
                      masks: list[MaskSet]) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier and eq. 2 on given region embeddings: embeddings[b]: (N_b, D) of masks[b] ->
        (pseudo_logits (B, K, H, W), covered (B, H, W) bool)."""
        results = [ensemble_pseudo_logits(self.classify(v), m) for v, m in zip(embeddings, masks)]
        return torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])

    def forward(self, images: torch.Tensor, masks: list[MaskSet]) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole SBM: images (B, 3, H, W) in [0, 1]; masks[b]: MaskSet ->
        (pseudo_logits (B, K, H, W), covered (B, H, W) bool)."""
        return self.pseudo_logits(self.region_embeddings(images, masks), masks)

    @torch.no_grad()
    def start_prototypes(self, embeddings: list[torch.Tensor], masks: list[MaskSet], seed: int = 0,
                         region_classes: list[torch.Tensor] | None = None) -> None:
        """The classifier's label-free start: K spherical k-means centres of the region embeddings v_i
        (eq. 1) of all training frames, each region weighted by area ** AREA_POWER.

        embeddings[f]: (N_f, D) of masks[f], one pair per training frame. region_classes (ANALYSIS ONLY,
        uses labels): one class id per region of each frame, from a labelled prior; the
        prototypes are then the class means instead of k-means centres.
        """
        points = F.normalize(torch.cat(embeddings).float(), dim=1)
        weights = torch.cat([m.areas() ** AREA_POWER for m in masks]).to(points.device)
        if region_classes is not None:
            centres = cluster_means(points, weights, torch.cat(list(region_classes)), self.num_clusters)
        else:
            centres = spherical_kmeans(points, weights, self.num_clusters,
                                       generator=torch.Generator().manual_seed(seed))
        self.prototypes.copy_(F.normalize(centres.to(self.prototypes), dim=1))
