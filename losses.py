"""SoccerSAM's training losses, paper sections 2.3-2.5 (eqs. 3-7).

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

The student learns from the Semantic Bridging Module's ensemble pseudo logit map y_hat with three
terms, in the paper's order: a boundary term asking the student to draw strong edges wherever y_hat
has one (eq. 3), a pixel-wise soft cross-entropy towards softmax(y_hat) (eq. 4), and a
self-consistency term between two augmented views of the same frame, mapped back into one frame
(eqs. 5-6). Eq. 7 weighs them 0.3 / 1.0 / 0.4. The paper calls eq. 4's loss L_cons (section 2.4) and
weighs it in eq. 7 as L_sbm (section 2.5): one loss under two names, `sbm_consistency_loss` here.

Every function takes logits shaped (B, C, H, W) and an optional `valid` (B, H, W) bool mask of the
pixels that count (pixels no SAM mask covers, or outside an augmented crop, do not). No function
reads a label: this file is the whole supervision of a label-free student. Needs beside it: no
sibling module.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Sobel kernels divided by 4, so a step of height 1 between neighbouring pixels gives magnitude 1.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4


def mean_per_frame(per_pixel: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Each frame's mean over its valid pixels, then the mean over frames: (B, H, W) values -> scalar.

    A frame with no valid pixel counts as 0 (graph kept). The paper does not say how pixels of several
    frames are pooled. Frame by frame, every frame weighs the same whatever its count of valid pixels, so a
    batch split into equal shares between processes gives, averaged over them, the whole batch's loss
    (train.py's global batch: the number of processes changes nothing).
    """
    if valid is None:
        return per_pixel.mean()
    valid = valid.to(per_pixel.dtype)
    return ((per_pixel * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)).mean()


def soft_cross_entropy(target_probabilities: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy -sum_c q_c log softmax(logits)_c: (B, C, H, W) twice -> (B, H, W)."""
    return -(target_probabilities * F.log_softmax(logits, dim=1)).sum(dim=1)


def sobel_edges(probabilities: torch.Tensor) -> torch.Tensor:
    """Edge strength of a class-probability map: (B, C, H, W) -> (B, H, W), >= 0 (eq. 3's gradient operator;
    the paper applies it to logits, we to probabilities: `boundary_consistency_loss` says why).

    Per class, the Sobel gradient magnitude (scaled so a 0 -> 1 step gives 1); then half the sum
    over classes, so a hard step between two one-hot classes gives 1 (the total-variation distance
    between the two distributions) and every class channel receives gradient. Borders are
    replicated, so the frame's edge is not an object edge.
    """
    channels = probabilities.shape[1]
    kernel_x = SOBEL_X.to(probabilities)
    kernels = torch.stack([kernel_x, kernel_x.T])[:, None].repeat(channels, 1, 1, 1)
    padded = F.pad(probabilities, (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(padded, kernels, groups=channels).unflatten(1, (channels, 2))
    # The small constant keeps the square root differentiable where the map is flat.
    magnitude = torch.sqrt((gradients ** 2).sum(dim=2) + 1e-12)
    return magnitude.sum(dim=1) / 2


@torch.no_grad()
def sbm_boundary(pseudo_logits: torch.Tensor, valid: torch.Tensor | None = None,
                 threshold: float = 0.1) -> torch.Tensor:
    """B_SBM of eq. 3: the pixels where the SBM's pseudo map has an edge, a fixed binary target.

    B_SBM = sobel_edges(softmax(y_hat)) > threshold. The paper thresholds without giving the value.
    y_hat is constant inside each of the teacher's segments, so its edge strength is zero everywhere but
    on segment borders, where it is the total-variation distance between the two sides' class
    distributions; 0.1 keeps the borders where the SBM's classes change by at least that much and drops
    the faint ones between two segments it gives the same class.
    pseudo_logits: (B, C, H, W); valid: (B, H, W) bool -> (B, H, W) bool. Pixels whose 3x3
    neighbourhood leaves `valid` are dropped: uncovered pixels carry zero logits, and the step from
    real logits to zero is not an object edge.
    """
    edges = sobel_edges(F.softmax(pseudo_logits.float(), dim=1)) > threshold
    if valid is not None:
        interior = -F.max_pool2d(-valid[:, None].float(), 3, stride=1, padding=1)
        edges &= interior[:, 0] > 0.5
    return edges


def boundary_consistency_loss(student_logits: torch.Tensor, target_edges: torch.Tensor,
                              sharpness: float = 20.0) -> torch.Tensor:
    """eq. 3, boundary-aware consistency: L_bd = 1/|B_SBM| * sum_{p in B_SBM} |B_s(p) - 1|.

    The student must draw a strong edge on every pixel of the target boundary map, B_SBM
    (`sbm_boundary`) in the paper. B_s = tanh(sharpness * sobel_edges(softmax(student))): deviation
    from the paper, which thresholds B_s too; a threshold has zero gradient almost everywhere, so we
    use this soft edge strength in [0, 1) instead. With sharpness 20, a clean step
    (strength 1) or a corner pixel (strength about 0.35) gives B_s above 0.999; a flat student gives 0.

    Deviation: the paper applies Sobel to the logits P_s and y_hat; we apply it to their softmax
    probabilities (`sobel_edges`), because softmax ignores a logit offset shared by all classes: a logit
    gradient can be large where the class distribution does not change, and its size depends on the logits'
    scale, which no fixed threshold fits. On probabilities an edge's strength is the change of the class
    distribution, in [0, 1], for both maps.

    What it rewards and what it does not: an edge of any kind on B_SBM. B_s saturates from a strength of
    about 0.15, so a student of i.i.d. logit noise (sigma 0.5) scores 0.015, nearly the clean step's 0
    (tests/test_losses.py), and edges off B_SBM cost nothing. Two readings that tell noise from the right
    edge (the strength clipped to 1; a two-sided, class-balanced cross-entropy) were measured and lost, and
    dropping eq. 3 changes nothing the seeds can tell apart on our data (RESULTS.md, Table 2), so the
    paper's form stays.
    student_logits: (B, C, H, W); target_edges: (B, H, W) bool -> scalar, the mean over B_SBM's pixels
    frame by frame (`mean_per_frame`); a frame with an empty target counts 0.
    """
    student_edges = torch.tanh(sharpness * sobel_edges(F.softmax(student_logits, dim=1)))
    return mean_per_frame(1 - student_edges, target_edges)


def sbm_consistency_loss(pseudo_logits: torch.Tensor, student_logits: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """eq. 4, SBM-to-student consistency: L_cons = L_CE(y_hat, P_S)
    = mean_p -sum_c softmax(y_hat(p))_c log P_S(p)_c; eq. 7 calls it L_sbm.

    The student matches the SBM's per-pixel class distribution.
    pseudo_logits, student_logits: (B, C, H, W); valid: (B, H, W) bool (pixels covered by a mask).
    The target is not detached here: gradients reach the SBM unless the caller passes
    `pseudo_logits.detach()`, so the trainer decides whether the student trains the SBM back.
    """
    return mean_per_frame(soft_cross_entropy(F.softmax(pseudo_logits, dim=1), student_logits), valid)


def photometric_jitter(images: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4,
                       saturation: float = 0.4,
                       generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation per image, each factor drawn uniformly in
    1 +- strength from the image's own generator (the global one without `generators`).
    The paper names colour jitter without strengths; 0.4 each is ours.
    images: (B, 3, H, W) in [0, 1] -> same."""
    batch = images.shape[0]
    generators = generators or [None] * batch
    # (B, 3): brightness, contrast and saturation factors, one row per image.
    u = torch.stack([torch.rand(3, generator=g) for g in generators])
    factors = (1 + torch.tensor([brightness, contrast, saturation]) * (2 * u - 1)).to(images)

    def factor(which: int) -> torch.Tensor:
        return factors[:, which].view(batch, 1, 1, 1)

    grey = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)
    x = images * factor(0)
    x = (x - grey.mean(dim=(2, 3), keepdim=True)) * factor(1) + grey.mean(dim=(2, 3), keepdim=True)
    return ((x - grey) * factor(2) + grey).clamp(0, 1)


@dataclass
class SpatialView:
    """The spatial part of an augmentation T, enough to apply T^-1 to the view's predictions.

    flips: (B,) bool, the frame was flipped left-right first; boxes: (B, 4) int (top, left, height,
    width) of the crop in the flipped frame, which was then resized to `size` (H, W).
    """

    flips: torch.Tensor
    boxes: torch.Tensor
    size: tuple[int, int]

    def invert(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """T^-1: view logits (B, C, H, W) -> (logits in the original frame (B, C, H, W), valid (B, H, W)).

        Each view is resized back to its crop box and pasted into a zero canvas; pixels outside the
        box were not seen by the view and come back with valid False.
        """
        height, width = self.size
        canvas = logits.new_zeros(logits.shape)
        valid = torch.zeros(logits.shape[0], height, width, dtype=torch.bool, device=logits.device)
        for b, (top, left, box_h, box_w) in enumerate(self.boxes.tolist()):
            canvas[b, :, top:top + box_h, left:left + box_w] = F.interpolate(
                logits[b:b + 1], size=(box_h, box_w), mode="bilinear", align_corners=False)[0]
            valid[b, top:top + box_h, left:left + box_w] = True
        flips = self.flips.to(logits.device)
        canvas = torch.where(flips[:, None, None, None], canvas.flip(-1), canvas)
        valid = torch.where(flips[:, None, None], valid.flip(-1), valid)
        return canvas, valid


def random_spatial_view(images: torch.Tensor, generators: list[torch.Generator] | None = None,
                        min_scale: float = 0.6, jitter: bool = True) -> tuple[torch.Tensor, SpatialView]:
    """eq. 5's stochastic augmentation T: x' = T(x), a random left-right flip, a random crop
    (each side min_scale..1 of the frame's, aspect kept) resized back to H x W, and colour jitter.

    The paper names flip, crop and colour jitter; the strengths (crops of 0.6-1 of a side, jitter 0.4)
    are ours. Each frame draws from its own generator (`generators[b]`; the global one without them), so
    a frame's view does not depend on which other frames share its batch, or its process (train.py).
    images: (B, 3, H, W) in [0, 1] -> (view (B, 3, H, W), SpatialView to map predictions back).
    """
    batch, _, height, width = images.shape
    generators = generators or [None] * batch
    flips, boxes, views = [], [], []
    for b, generator in enumerate(generators):
        flip, scale, down, across = torch.rand(4, generator=generator).tolist()
        scale = min_scale + (1 - min_scale) * scale
        box_h, box_w = max(1, round(height * scale)), max(1, round(width * scale))
        top = min(int(down * (height - box_h + 1)), height - box_h)
        left = min(int(across * (width - box_w + 1)), width - box_w)
        image = images[b:b + 1].flip(-1) if flip < 0.5 else images[b:b + 1]
        views.append(F.interpolate(image[..., top:top + box_h, left:left + box_w], size=(height, width),
                                   mode="bilinear", align_corners=False))
        flips.append(flip < 0.5)
        boxes.append((top, left, box_h, box_w))
    view = torch.cat(views)
    if jitter:
        view = photometric_jitter(view, generators=generators)
    return view, SpatialView(torch.tensor(flips), torch.tensor(boxes), (height, width))


def augmentation_consistency_loss(logits_1: torch.Tensor, logits_2: torch.Tensor,
                                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """eq. 6, student self-consistency under augmentation: L_aug = L_CE(P_S^(1), P_S^(2))
    = mean_p -sum_c P_S^(1)(p)_c log P_S^(2)(p)_c.

    The student's predictions for two views, brought into one frame, must agree.
    logits_1, logits_2: (B, C, H, W) in the same frame; valid: (B, H, W) bool.
    P_S^(1) is detached (stop-gradient on the target view, as in consistency training): otherwise
    the cheapest way to agree is for both views to collapse to the same flat prediction.
    """
    return mean_per_frame(soft_cross_entropy(F.softmax(logits_1, dim=1).detach(), logits_2), valid)


def total_loss(l_sbm: torch.Tensor, l_bd: torch.Tensor, l_aug: torch.Tensor, lambda_sbm: float = 0.3,
               lambda_bd: float = 1.0, lambda_aug: float = 0.4) -> torch.Tensor:
    """eq. 7, training objective: L_total = lambda_sbm L_sbm + lambda_bd L_bd + lambda_aug L_aug.

    The paper's weights 0.3, 1.0, 0.4 are the defaults.
    """
    return lambda_sbm * l_sbm + lambda_bd * l_bd + lambda_aug * l_aug
