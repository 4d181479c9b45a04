"""SBM: eqs. 1-2 against per-mask loops, Sinkhorn balance, and label-free training on synthetic scenes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from sam_teacher import MaskSet
from sbm import (SemanticBridgingModule, cell_lab_colour, ensemble_pseudo_logits, masked_average_pool,
                 photometric_jitter, sinkhorn_knopp)


def random_masks(generator, n, height, width):
    masks = torch.rand(n, height, width, generator=generator) > 0.6
    masks[:, 0, 0] = True
    return masks


def test_eq1_matches_per_mask_loop():
    g = torch.Generator().manual_seed(0)
    features, masks = torch.randn(5, 6, 7, generator=g), random_masks(g, 4, 6, 7)
    expected = torch.stack([torch.stack([features[:, y, x] for y in range(6) for x in range(7) if m[y, x]]).mean(0)
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
    empty, nothing = ensemble_pseudo_logits(torch.zeros(0, 4), MaskSet.from_masks(torch.zeros(0, 5, 6, dtype=torch.bool)))
    assert empty.shape == (4, 5, 6) and not empty.any() and not nothing.any()


def test_sinkhorn_balances_clusters_and_follows_region_weights():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(40, 5, generator=g) + torch.tensor([3.0, 0, 0, 0, 0])
    weights = torch.rand(40, generator=g) + 0.1
    q = sinkhorn_knopp(scores, n_iters=50, epsilon=0.5, region_weights=weights)
    assert torch.allclose(q.sum(1), torch.ones(40), atol=1e-5)
    cluster_mass = (q * (weights / weights.sum())[:, None]).sum(0)
    assert torch.allclose(cluster_mass, torch.full((5,), 0.2), atol=1e-3)
    # Given cluster weights, the cluster masses follow them instead of being equal.
    wanted = torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1])
    q = sinkhorn_knopp(scores, n_iters=50, epsilon=0.5, region_weights=weights, cluster_weights=wanted)
    assert torch.allclose((q * (weights / weights.sum())[:, None]).sum(0), wanted, atol=1e-3)


def test_photometric_jitter_keeps_range_and_changes_colours():
    images = torch.rand(2, 3, 8, 8)
    jittered = photometric_jitter(images, 0.4, 0.4, 0.4, 0.05, 0.03, torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape and jittered.min() >= 0 and jittered.max() <= 1
    assert (jittered - images).abs().mean() > 0.01


def test_sam_backbone_without_checkpoint_says_so():
    with pytest.raises(FileNotFoundError, match="sam_checkpoint"):
        SemanticBridgingModule(backbone="sam", sam_checkpoint="/nonexistent/sam_vit_b.pth")


def test_unknown_objective_setting_is_refused():
    with pytest.raises(ValueError, match="unknown SBM objective settings"):
        SemanticBridgingModule(backbone="random", temprature=0.1)


def test_backbone_frozen_and_forward_shapes():
    sbm = SemanticBridgingModule(num_clusters=7, backbone="random").train()
    assert not sbm.backbone.training
    assert all(not p.requires_grad for p in sbm.backbone.parameters())
    assert sbm.objective_settings["area_power"] == 0.5
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 64, 96, generator=g)
    masks = [MaskSet.from_masks(random_masks(g, 3, 64, 96)), MaskSet.from_masks(torch.zeros(0, 64, 96).bool())]
    pseudo, covered = sbm(images, masks)
    assert pseudo.shape == (2, 7, 64, 96) and covered.shape == (2, 64, 96)
    assert covered[0].any() and not covered[1].any() and pseudo.requires_grad
    loss = sbm.self_labelling_loss(images, masks, generator=g)
    loss.backward()
    assert sbm.prototypes.grad.abs().sum() > 0 and sbm.head.weight.grad.abs().sum() > 0


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
    from data import make_scene

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


def test_label_free_training_finds_classes():
    torch.manual_seed(0)
    train = [scene(seed) for seed in range(16)]
    held_out = [scene(1000 + seed) for seed in range(6)]
    sbm = SemanticBridgingModule(num_clusters=NUM_CLASSES)
    untrained = matched_scores(sbm, held_out)
    # The backbone is frozen, so its features for a few jittered views per scene are computed once
    # and each step draws two of them: the same objective as self_labelling_loss, 20x faster on CPU.
    g = torch.Generator().manual_seed(0)
    images = torch.stack([image for image, _, _ in train])
    jitter = {k: sbm.objective_settings[k] for k in ("brightness", "contrast", "saturation", "hue", "noise_std")}
    views = torch.stack([sbm.frozen_features(photometric_jitter(images, generator=g, **jitter)) for _ in range(3)])
    optimizer = torch.optim.AdamW([p for p in sbm.parameters() if p.requires_grad], lr=1e-3)
    sbm.train()
    for _ in range(300):
        batch = torch.randperm(len(train), generator=g)[:4]
        pair = torch.randperm(3, generator=g)[:2]
        loss = sbm.swapped_prediction_loss(views[pair[0], batch], views[pair[1], batch],
                                           [train[i][1] for i in batch.tolist()])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = matched_scores(sbm, held_out)
    print(f"untrained acc/mIoU/clusters {untrained}, trained {trained}")
    assert trained[2] >= 6
    assert untrained[1] < 0.15 < 0.22 < trained[1]


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
    means = cluster_means(F.normalize(outlier, dim=1), weights, torch.cat([truth, torch.zeros(1, dtype=torch.long)]), 4)
    assert torch.allclose(means, cluster_means(F.normalize(points, dim=1), torch.ones(200), truth, 4), atol=1e-6)
    with pytest.raises(ValueError, match="at least k"):
        spherical_kmeans(points[:3], torch.ones(3), 4)


def test_merged_kmeans_joins_fine_clusters_of_one_class_before_joining_classes():
    from sbm import merged_kmeans

    g = torch.Generator().manual_seed(0)
    classes = F.normalize(torch.randn(3, 32, generator=g), dim=1)
    # Each class is three tight sub-clusters near its direction; one class holds most of the weight,
    # so plain k-means with 3 centres would rather split it than keep the small classes apart.
    subclusters = F.normalize(classes.repeat_interleave(3, dim=0) + 0.25 * torch.randn(9, 32, generator=g), dim=1)
    truth = torch.arange(9).repeat_interleave(40)
    points = subclusters[truth] + 0.02 * torch.randn(360, 32, generator=g)
    weights = torch.where(truth < 3, 20.0, 1.0)
    found = merged_kmeans(points, weights, 3, over_clusters=9, generator=g)
    assigned = (F.normalize(points, dim=1) @ found.T).argmax(dim=1)
    class_of_point = truth // 3
    for c in range(3):
        assert assigned[class_of_point == c].unique().numel() == 1
    assert assigned[::40][::3].unique().numel() == 3
    with pytest.raises(ValueError, match="over_clusters >= k"):
        merged_kmeans(points, weights, 3, over_clusters=2)


def test_kmeans_prototypes_name_regions_before_any_training():
    """The trainer's label-free start: prototypes from k-means on the region embeddings."""
    from sbm import spherical_kmeans

    torch.manual_seed(0)
    train = [scene(seed) for seed in range(16)]
    held_out = [scene(1000 + seed) for seed in range(6)]
    sbm = SemanticBridgingModule(num_clusters=NUM_CLASSES).eval()
    random_start = matched_scores(sbm, held_out)
    with torch.no_grad():
        embeddings = [sbm.region_embeddings(sbm.dense_features(image[None])[0], masks) for image, masks, _ in train]
    areas = torch.cat([masks.areas() for _, masks, _ in train])
    sbm.set_prototypes(spherical_kmeans(torch.cat(embeddings), areas ** 0.5, NUM_CLASSES,
                                        generator=torch.Generator().manual_seed(0)))
    kmeans_start = matched_scores(sbm, held_out)
    print(f"random prototypes {random_start}, k-means prototypes {kmeans_start}")
    assert kmeans_start[1] > random_start[1] + 0.1
    with pytest.raises(ValueError, match="centroids"):
        sbm.set_prototypes(torch.zeros(3, 5))


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


def test_label_temperature_sharpens_the_pseudo_logits_without_changing_their_argmax():
    image, masks, _ = scene(0)
    soft = SemanticBridgingModule(num_clusters=NUM_CLASSES).eval()
    sharp = SemanticBridgingModule(num_clusters=NUM_CLASSES, label_temperature=0.02).eval()
    sharp.load_state_dict(soft.state_dict())
    with torch.no_grad():
        (y_soft, covered), (y_sharp, _) = soft(image[None], [masks]), sharp(image[None], [masks])
    assert torch.allclose(y_sharp, 5 * y_soft, atol=1e-4)
    assert torch.equal(y_sharp.argmax(1)[covered], y_soft.argmax(1)[covered])


def test_cell_lab_colour_gives_known_colours_per_cell():
    images = torch.zeros(1, 3, 8, 8)
    images[0, 0, :, :4] = 1.0  # left half pure red, right half black
    lab = cell_lab_colour(images, (1, 2))
    assert lab.shape == (1, 3, 1, 2)
    assert torch.allclose(lab[0, :, 0, 0], torch.tensor([53.24, 80.09, 67.20]) / 100, atol=1e-3)
    assert torch.allclose(lab[0, :, 0, 1], torch.zeros(3), atol=1e-4)


def test_colour_weight_appends_the_weighted_cell_colour_to_f():
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    plain = SemanticBridgingModule(num_clusters=5).eval()
    coloured = SemanticBridgingModule(num_clusters=5, colour_weight=2.0).eval()
    f_plain, f_coloured = plain.frozen_features(images), coloured.frozen_features(images)
    assert f_coloured.shape[1] == f_plain.shape[1] + 3 == coloured.prototypes.shape[1]
    assert torch.allclose(f_coloured[:, :-3], f_plain, atol=1e-5)
    assert torch.allclose(f_coloured[:, -3:], 2.0 * cell_lab_colour(images, f_plain.shape[-2:]), atol=1e-5)
