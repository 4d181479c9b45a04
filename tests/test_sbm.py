"""SBM: eqs. 1-2 against per-mask loops and the paper's dense form, and the k-means start on synthetic
scenes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from mask_set import MaskSet
from sbm import (SemanticBridgingModule, ensemble_pseudo_logits, ensemble_pseudo_logits_dense,
                 masked_average_pool, masked_average_pool_dense)
from models import build_sbm


def random_masks(generator, n, height, width):
    masks = torch.rand(n, height, width, generator=generator) > 0.6
    masks[:, 0, 0] = True
    return masks


def test_eq1_matches_per_mask_loop():
    g = torch.Generator().manual_seed(0)
    features, masks = torch.randn(5, 6, 7, generator=g), random_masks(g, 4, 6, 7)
    expected = torch.stack([torch.stack([features[:, y, x] for y in range(6) for x in range(7)
                                         if m[y, x]]).mean(0)
                            for m in masks])
    assert torch.allclose(masked_average_pool(features, MaskSet.from_masks(masks)), expected, atol=1e-5)


@pytest.mark.parametrize("size", [(64, 96), (61, 90)])
def test_eq1_on_a_coarser_grid_pools_each_pixels_cell(size):
    """F at stride 8: eq. 1 over the pixels, each pixel taking its cell's feature (cells of
    ceil(H / h) x ceil(W / w) pixels, cut at the border when the grid does not divide the frame)."""
    g = torch.Generator().manual_seed(1)
    features, masks = torch.randn(5, 8, 12, generator=g), random_masks(g, 4, *size)
    block_h, block_w = -(-size[0] // 8), -(-size[1] // 12)
    upsampled = features.repeat_interleave(block_h, 1).repeat_interleave(block_w, 2)[:, :size[0], :size[1]]
    expected = torch.stack([upsampled[:, m].mean(dim=1) for m in masks])
    assert torch.allclose(masked_average_pool(features, MaskSet.from_masks(masks)), expected, atol=1e-5)


def test_eq2_averages_overlaps_and_leaves_uncovered_pixels_at_zero():
    g = torch.Generator().manual_seed(1)
    logits, masks = torch.randn(3, 4, generator=g), random_masks(g, 3, 5, 6)
    masks[:, 4, 5] = False
    pseudo, covered = ensemble_pseudo_logits(logits, MaskSet.from_masks(masks))
    for y in range(5):
        for x in range(6):
            owners = [i for i in range(3) if masks[i, y, x]]
            expected = torch.stack([logits[i] for i in owners]).mean(0) if owners else torch.zeros(4)
            assert torch.allclose(pseudo[:, y, x], expected, atol=1e-6)
            assert bool(covered[y, x]) == bool(owners)
    assert not covered[4, 5]
    empty, nothing = ensemble_pseudo_logits(torch.zeros(0, 4),
                                            MaskSet.from_masks(torch.zeros(0, 5, 6, dtype=torch.bool)))
    assert empty.shape == (4, 5, 6) and not empty.any() and not nothing.any()


def test_the_fast_forms_compute_the_papers_dense_eqs_1_and_2():
    g = torch.Generator().manual_seed(2)
    # SAM-like overlapping masks on a 16 x 24 frame, F at stride 4; one pixel no mask covers.
    masks, features, logits = random_masks(g, 6, 16, 24), torch.randn(7, 4, 6, generator=g), torch.randn(6, 3)
    masks[:, 15, 23] = False
    mask_set = MaskSet.from_masks(masks)
    # Eq. 1 as the paper writes it sees F at the masks' size: a pixel takes the feature of its cell.
    dense_features = F.interpolate(features[None], size=(16, 24), mode="nearest")[0]
    assert torch.allclose(masked_average_pool(features, mask_set),
                          masked_average_pool_dense(dense_features, masks), atol=1e-5)
    fast, covered = ensemble_pseudo_logits(logits, mask_set)
    assert torch.allclose(fast, ensemble_pseudo_logits_dense(logits, masks), atol=1e-6)
    assert torch.equal(covered, masks.any(dim=0))


def test_sam_backbone_without_checkpoint_says_so():
    with pytest.raises(FileNotFoundError, match="--sam-checkpoint"):
        build_sbm(11, "sam", "/nonexistent/sam_vit_b.pth")
    with pytest.raises(FileNotFoundError, match="--sam-checkpoint"):
        build_sbm(11, "sam")


def test_backbone_frozen_and_forward_shapes():
    sbm = build_sbm(7, "random").train()
    assert not sbm.backbone.training
    assert all(not p.requires_grad for p in sbm.backbone.parameters())
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 64, 96, generator=g)
    masks = [MaskSet.from_masks(random_masks(g, 3, 64, 96)),
             MaskSet.from_masks(torch.zeros(0, 64, 96).bool())]
    pseudo, covered = sbm(images, masks)
    assert pseudo.shape == (2, 7, 64, 96) and covered.shape == (2, 64, 96)
    assert covered[0].any() and not covered[1].any()
    # The prototypes are the SBM's one trainable part: eq. 4's gradient reaches them through y_hat.
    assert [name for name, p in sbm.named_parameters() if p.requires_grad] == ["prototypes"]
    pseudo.sum().backward()
    assert sbm.prototypes.grad is not None and sbm.prototypes.grad.abs().sum() > 0


def test_cached_region_embeddings_give_the_same_pseudo_logits():
    """train.py computes eq. 1 once per frame and runs only the classifier and eq. 2 per step: the same
    y_hat as the whole SBM on a batch (to float rounding: a batched convolution sums in another order)."""
    sbm = build_sbm(5, "random").eval()
    g = torch.Generator().manual_seed(4)
    images = torch.rand(3, 3, 64, 96, generator=g)
    masks = [MaskSet.from_masks(random_masks(g, 4, 64, 96)) for _ in range(3)]
    whole, covered = sbm(images, masks)
    cached = [sbm.region_embeddings(image[None], [m])[0] for image, m in zip(images, masks)]
    from_cache, covered_from_cache = sbm.pseudo_logits(cached, masks)
    assert torch.allclose(whole, from_cache, atol=1e-4) and torch.equal(covered, covered_from_cache)
    single = sbm(images[:1], masks[:1])[0]
    assert torch.equal(single, sbm.pseudo_logits(cached[:1], masks[:1])[0])


class TinyBackbone(torch.nn.Module):
    """Two feature maps, at strides 1 and 2: the least a backbone must give the SBM."""
    channels, weights_description = [4, 6], "a tiny random network"

    def __init__(self):
        super().__init__()
        self.fine, self.coarse = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 6, 3, 2, 1)

    def forward(self, images):
        fine = self.fine(images)
        return [fine, self.coarse(fine)]


def test_the_sbm_runs_on_any_frozen_backbone():
    """sbm.py needs no sibling's network: any module that returns feature maps and names their
    channels is F, and the SBM freezes it."""
    sbm = SemanticBridgingModule(TinyBackbone(), feature_levels=[0, 1], num_clusters=3).train()
    assert not sbm.backbone.training and not any(p.requires_grad for p in sbm.backbone.parameters())
    g = torch.Generator().manual_seed(5)
    masks = [MaskSet.from_masks(random_masks(g, 4, 16, 24))]
    pseudo, covered = sbm(torch.rand(1, 3, 16, 24, generator=g), masks)
    assert pseudo.shape == (1, 3, 16, 24) and covered.any()
    assert sbm.prototypes.shape == (3, 4 + 6)


# Label-free training on synthetic scenes with oracle masks (connected components of the class
# regions, ids dropped): labels are read only by the scoring below.
SIZE = (128, 192)
NUM_CLASSES = 11


def oracle_masks(label):
    masks = []
    for class_id in np.unique(label):
        components, count = ndimage.label(label == class_id)
        masks.extend(components == i for i in range(1, count + 1))
    return MaskSet.from_masks(np.stack(masks))


def scene(seed):
    from stand_ins.synthetic import make_scene

    image, label = make_scene(seed, SIZE)
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255, oracle_masks(label), label


def matched_scores(sbm, scenes):
    """Hungarian-matched pixel accuracy, mIoU and clusters used (>= 0.5 % of pixels) over scenes."""
    sbm.eval()
    confusion = np.zeros((NUM_CLASSES, sbm.num_clusters), np.int64)
    with torch.no_grad():
        for image, masks, label in scenes:
            prediction = sbm(image[None], [masks])[0][0].argmax(0).numpy()
            confusion += np.bincount(label.ravel() * sbm.num_clusters + prediction.ravel(),
                                     minlength=confusion.size).reshape(confusion.shape)
    rows, cols = linear_sum_assignment(-confusion)
    ious = [confusion[r, c] / (confusion[r].sum() + confusion[:, c].sum() - confusion[r, c])
            for r, c in zip(rows, cols) if confusion[r].sum() > 0]
    used = int((confusion.sum(0) > 0.005 * confusion.sum()).sum())
    return confusion[rows, cols].sum() / confusion.sum(), float(np.mean(ious)), used


def start(sbm, scenes, **kwargs):
    """start_prototypes on the eq. 1 embeddings of these scenes, as train.py calls it."""
    embeddings = [sbm.region_embeddings(image[None], [masks])[0] for image, masks, _ in scenes]
    sbm.start_prototypes(embeddings, [masks for _, masks, _ in scenes], **kwargs)


def test_spherical_kmeans_finds_separated_directions_and_respects_weights():
    from sbm import cluster_means, spherical_kmeans

    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 16, generator=g), dim=1)
    truth = torch.arange(4).repeat_interleave(50)
    points = centres[truth] + 0.05 * torch.randn(200, 16, generator=g)
    found = spherical_kmeans(points, torch.ones(200), 4, generator=g)
    assert (found @ centres.T).max(dim=0).values.min() > 0.98
    # A point of weight 0 does not move its cluster's mean.
    outlier = torch.cat([points, -centres[:1]])
    weights = torch.cat([torch.ones(200), torch.zeros(1)])
    means = cluster_means(F.normalize(outlier, dim=1), weights,
                          torch.cat([truth, torch.zeros(1, dtype=torch.long)]), 4)
    assert torch.allclose(means, cluster_means(F.normalize(points, dim=1), torch.ones(200), truth, 4),
                          atol=1e-6)
    with pytest.raises(ValueError, match="at least k"):
        spherical_kmeans(points[:3], torch.ones(3), 4)


def test_kmeans_prototypes_name_regions_before_any_training():
    """The label-free start: prototypes from spherical k-means on the region embeddings (eq. 1)."""
    torch.manual_seed(0)
    train = [scene(seed) for seed in range(16)]
    held_out = [scene(1000 + seed) for seed in range(6)]
    sbm = build_sbm(NUM_CLASSES).eval()
    random_start = matched_scores(sbm, held_out)
    start(sbm, train)
    kmeans_start = matched_scores(sbm, held_out)
    print(f"random prototypes {random_start}, k-means prototypes {kmeans_start}")
    assert torch.allclose(sbm.prototypes.norm(dim=1), torch.ones(NUM_CLASSES))
    assert kmeans_start[2] >= 6 and kmeans_start[1] > random_start[1] + 0.1


def test_a_labelled_prior_makes_each_prototype_its_class_mean():
    train = [scene(seed) for seed in range(3)]
    sbm = build_sbm(NUM_CLASSES).eval()
    # Every region called class 2: class 2's prototype is the mean of all embeddings, the others stay zero.
    classes = [torch.full((len(masks),), 2) for _, masks, _ in train]
    start(sbm, train, region_classes=classes)
    norms = sbm.prototypes.norm(dim=1)
    assert torch.allclose(norms[2], torch.tensor(1.0)) and (norms[torch.arange(NUM_CLASSES) != 2] == 0).all()


def test_segment_cell_counts_count_each_segments_pixels_per_cell():
    from sbm import segment_cell_counts

    g = torch.Generator().manual_seed(1)
    masks = MaskSet.from_masks(torch.rand(4, 61, 90, generator=g) > 0.5)
    counts = segment_cell_counts(masks, (8, 12))
    assert torch.equal(counts.sum(dim=1), masks.segment_areas().float())
    # Cell (7, 11) holds rows 56..60 and columns 88..89: the frame ends inside it.
    in_cell = masks.segments[56:, 88:]
    for s in range(masks.num_segments):
        assert counts[s, 7 * 12 + 11] == (in_cell == s).sum()
