"""Each loss of eqs. 3-7 against a slow per-pixel reference, plus the properties the paper relies on."""
import math

import pytest
import torch
import torch.nn.functional as F

from losses import (SpatialView, augmentation_consistency_loss, boundary_consistency_loss,
                    random_spatial_view, sbm_boundary, sbm_consistency_loss, sobel_edges, total_loss)


def reference_soft_ce(target_logits, logits, valid, detach_target=False):
    """Each frame's mean over its valid pixels, then the mean over frames (a frame without one counts 0)."""
    frames = []
    batch, classes, height, width = logits.shape
    for b in range(batch):
        total, count = 0.0, 0
        for y in range(height):
            for x in range(width):
                if valid is not None and not valid[b, y, x]:
                    continue
                q = torch.softmax(target_logits[b, :, y, x], 0)
                log_p = torch.log_softmax(logits[b, :, y, x], 0)
                total += -(q * log_p).sum().item()
                count += 1
        frames.append(total / max(count, 1))
    return sum(frames) / batch


def test_eq4_matches_per_pixel_reference():
    g = torch.Generator().manual_seed(0)
    pseudo, student = torch.randn(2, 5, 6, 7, generator=g), torch.randn(2, 5, 6, 7, generator=g)
    valid = torch.rand(2, 6, 7, generator=g) > 0.3
    assert sbm_consistency_loss(pseudo, student, valid).item() == pytest.approx(
        reference_soft_ce(pseudo, student, valid), rel=1e-5)
    assert sbm_consistency_loss(pseudo, student).item() == pytest.approx(
        reference_soft_ce(pseudo, student, None), rel=1e-5)


def test_eq4_smallest_when_student_matches_pseudo_distribution():
    g = torch.Generator().manual_seed(1)
    pseudo = torch.randn(1, 4, 5, 5, generator=g)
    best = sbm_consistency_loss(pseudo, pseudo.clone()).item()
    for _ in range(5):
        perturbed = pseudo + 0.5 * torch.randn(pseudo.shape, generator=g)
        assert sbm_consistency_loss(pseudo, perturbed).item() > best


def test_eq4_lets_gradient_reach_the_pseudo_logits():
    pseudo = torch.randn(1, 3, 4, 4, requires_grad=True)
    sbm_consistency_loss(pseudo, torch.randn(1, 3, 4, 4)).backward()
    assert pseudo.grad.abs().sum() > 0


def reference_sobel_edges(probabilities):
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
    batch, classes, height, width = probabilities.shape
    out = torch.zeros(batch, height, width)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                total = 0.0
                for c in range(classes):
                    gx = gy = 0.0
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            v = probabilities[b, c, min(max(y + dy, 0), height - 1),
                                              min(max(x + dx, 0), width - 1)]
                            gx += kernel[dy + 1, dx + 1] * v
                            gy += kernel[dx + 1, dy + 1] * v
                    total += math.sqrt(gx ** 2 + gy ** 2)
                out[b, y, x] = total / 2
    return out


def test_sobel_edges_match_reference_and_give_one_on_a_hard_step():
    g = torch.Generator().manual_seed(2)
    probabilities = torch.softmax(torch.randn(1, 3, 5, 6, generator=g), 1)
    assert torch.allclose(sobel_edges(probabilities), reference_sobel_edges(probabilities), atol=1e-5)
    step = torch.zeros(1, 2, 4, 6)
    step[:, 0, :, :3] = 1
    step[:, 1, :, 3:] = 1
    edges = sobel_edges(step)
    assert torch.allclose(edges[0, :, 2:4], torch.ones(4, 2), atol=1e-5)
    assert edges[0, :, [0, 5]].max() < 1e-5


def test_eq3_matches_reference():
    g = torch.Generator().manual_seed(3)
    student, pseudo = torch.randn(2, 4, 7, 8, generator=g), 3 * torch.randn(2, 4, 7, 8, generator=g)
    valid = torch.ones(2, 7, 8, dtype=torch.bool)
    valid[0, :, 6:] = False
    target = reference_sobel_edges(torch.softmax(pseudo, 1)) > 0.1
    strength = torch.tanh(20 * reference_sobel_edges(torch.softmax(student, 1)))
    frames = []  # each frame's mean over its B_SBM pixels
    for b in range(2):
        terms = []
        for y in range(7):
            for x in range(8):
                neighbourhood = valid[b, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
                if target[b, y, x] and neighbourhood.all():
                    terms.append(abs(strength[b, y, x].item() - 1))
        assert terms
        frames.append(sum(terms) / len(terms))
    edges = sbm_boundary(pseudo, valid)
    assert boundary_consistency_loss(student, edges).item() == pytest.approx(sum(frames) / 2, rel=1e-4)


def two_region_layout():
    layout = torch.zeros(1, 3, 10, 12)
    layout[:, 0] = 1
    layout[:, 0, 3:7, 4:9] = 0
    layout[:, 1, 3:7, 4:9] = 1
    layout[:, 2, 0:2, :] = 1
    layout[:, 0, 0:2, :] = 0
    return layout


def test_eq3_zero_for_sharp_student_on_the_pseudo_layout_positive_for_flat():
    pseudo = 10 * two_region_layout()
    sharp_student = 50 * two_region_layout()
    assert boundary_consistency_loss(sharp_student, sbm_boundary(pseudo)).item() < 1e-3
    flat_student = torch.zeros(1, 3, 10, 12)
    assert boundary_consistency_loss(flat_student, sbm_boundary(pseudo)).item() > 0.99


def test_eq3_gradient_reaches_the_student_and_empty_boundary_gives_zero():
    student = torch.randn(1, 3, 10, 12, requires_grad=True)
    boundary_consistency_loss(student, sbm_boundary(10 * two_region_layout())).backward()
    assert student.grad.abs().sum() > 0
    constant_pseudo = torch.zeros(1, 3, 10, 12)
    constant_pseudo[:, 1] = 5
    assert not sbm_boundary(constant_pseudo).any()
    loss = boundary_consistency_loss(student, sbm_boundary(constant_pseudo))
    assert loss.item() == 0 and loss.requires_grad


def vertical_step(column: int) -> torch.Tensor:
    """Confident logits (1, 3, 32, 32): class 0 left of `column`, class 1 from it on."""
    label = torch.zeros(32, 32, dtype=torch.long)
    label[:, column:] = 1
    return 10 * F.one_hot(label, 3).permute(2, 0, 1)[None].float()


def eq3_students() -> dict[str, torch.Tensor]:
    """Issue 35's students, scored against B_SBM = one vertical boundary (columns 15-16, 64 pixels)."""
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return {"noise": 0.5 * noise, "flat": torch.zeros(1, 3, 32, 32), "step": vertical_step(16),
            "step 8 off": vertical_step(24)}


def test_eq3_paper_form_saturates_on_noise():
    target = sbm_boundary(vertical_step(16))
    assert int(target.sum()) == 64
    scores = {name: boundary_consistency_loss(s, target).item() for name, s in eq3_students().items()}
    # tanh(20 x strength) calls noise an edge: noise scores about as well as the right step (the
    # variants that tell them apart lost on FSSOD and were removed: RESULTS.md, Table 2).
    assert scores["step"] < 1e-3 and scores["noise"] < 0.05
    assert scores["flat"] > 0.99 and scores["step 8 off"] > 0.99


def test_eq6_matches_reference_and_detaches_the_target_view():
    g = torch.Generator().manual_seed(4)
    logits_1 = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    logits_2 = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    valid = torch.rand(2, 5, 6, generator=g) > 0.5
    loss = augmentation_consistency_loss(logits_1, logits_2, valid)
    assert loss.item() == pytest.approx(
        reference_soft_ce(logits_1.detach(), logits_2.detach(), valid), rel=1e-5)
    loss.backward()
    assert logits_1.grad is None and logits_2.grad.abs().sum() > 0


def test_eq6_unchanged_when_flipped_views_are_flipped_back():
    g = torch.Generator().manual_seed(5)
    logits_1, logits_2 = torch.randn(2, 3, 8, 10, generator=g), torch.randn(2, 3, 8, 10, generator=g)
    view = SpatialView(torch.tensor([True, False]), torch.tensor([[0, 0, 8, 10]] * 2), (8, 10))
    flipped_1 = torch.stack([logits_1[0].flip(-1), logits_1[1]])
    flipped_2 = torch.stack([logits_2[0].flip(-1), logits_2[1]])
    back_1, valid = view.invert(flipped_1)
    back_2, _ = view.invert(flipped_2)
    assert torch.equal(back_1, logits_1) and torch.equal(back_2, logits_2) and bool(valid.all())
    assert augmentation_consistency_loss(back_1, back_2).item() == pytest.approx(
        augmentation_consistency_loss(logits_1, logits_2).item(), rel=1e-6)


def seeded(count: int, first: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(first + i) for i in range(count)]


def test_a_frames_view_depends_on_its_generator_not_on_its_batch():
    images = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(7))
    together, spatial = random_spatial_view(images, generators=seeded(3))
    alone, spatial_alone = random_spatial_view(images[2:], generators=seeded(1, first=2))
    assert torch.equal(together[2:], alone) and torch.equal(spatial.boxes[2:], spatial_alone.boxes)
    assert not torch.equal(together[0], together[1])


def test_random_spatial_view_round_trip():
    g = torch.Generator().manual_seed(6)
    # Smooth images: resampling a crop up and back down loses only what the grid cannot hold.
    images = F.interpolate(torch.rand(4, 3, 4, 6, generator=g), size=(32, 48), mode="bilinear",
                           align_corners=False)
    view, spatial = random_spatial_view(images, generators=seeded(4), jitter=False)
    assert view.shape == images.shape
    back, valid = spatial.invert(view)
    for b, (top, left, h, w) in enumerate(spatial.boxes.tolist()):
        assert h >= round(0.6 * 32) and int(valid[b].sum()) == h * w
    full = valid[:, None].expand_as(images)
    assert (back - images)[full].abs().mean() < 0.02
    identity, spatial = random_spatial_view(images, generators=seeded(4), min_scale=1.0, jitter=False)
    back, valid = spatial.invert(identity)
    assert torch.allclose(back, images, atol=1e-6) and bool(valid.all())
    jittered, _ = random_spatial_view(images, generators=seeded(4))
    assert jittered.min() >= 0 and jittered.max() <= 1


def test_eq7_weights():
    l_sbm, l_bd, l_aug = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    assert total_loss(l_sbm, l_bd, l_aug).item() == pytest.approx(0.3 * 2 + 1.0 * 3 + 0.4 * 5)
    assert total_loss(l_sbm, l_bd, l_aug, 1.0, 0.0, 0.0).item() == pytest.approx(2.0)
