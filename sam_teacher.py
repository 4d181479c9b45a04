"""The SAM teacher: class-agnostic masks M_1..M_N (paper section 2.1).

SoccerSAM starts by running a frozen Segment Anything Model (SAM) over every unlabeled training
frame x (416 x 608 x 3). SAM's automatic mask generator prompts it with a grid of points and keeps
the confident, stable answers: a set of instance masks {M_i}, i = 1..N, that carry structure but no
class. The Semantic Bridging Module later gives each mask class logits (eqs. 1-2, sbm.py); this file
produces the masks (`SamTeacher`) and, for the paper's reading of the SBM's frozen backbone, SAM's
image encoder as a dense feature map F (`SamImageEncoder`).

The paper also names SAM's boundary map B_SAM, but its eq. 3 asks the student for the edges of the
SBM's map, B_SBM (losses.py); B_SAM as eq. 3's target was measured no better and is not computed
(RESULTS.md, "Tried and dropped"). SAM is frozen, so its masks never change during training: they are
computed once per frame into a cache (mask_cache.py), and training never loads SAM. Without a SAM
checkpoint, regions.py offers mask sources that need no weights.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from utils import check_rgb_image

CHECKPOINT_HELP = (
    "The official SAM checkpoints are listed at "
    "https://github.com/facebookresearch/segment-anything#model-checkpoints "
    "(vit_b: sam_vit_b_01ec64.pth, vit_l: sam_vit_l_0b3195.pth, vit_h: sam_vit_h_4b8939.pth); "
    "download one and pass its path with --sam-checkpoint."
)
# SAM sees every image with its longest side at 1024 pixels (segment-anything's ResizeLongestSide).
SAM_INPUT_SIZE = 1024


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
