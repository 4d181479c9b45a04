"""The networks of a run: built from its settings, or read back from the checkpoint train.py wrote.

A run trains two networks (paper section 3.1): the student (student.py) and the Semantic Bridging
Module on its frozen backbone (sbm.py). train.py builds them here; evaluate.py and predict.py read a
finished run's `checkpoint.pt` back into them, with a one-line error for a file that is not one. Which
networks can stand in each role is our choice, since the paper names only a "compact student" and "a
frozen backbone" with "pretrained semantic priors": this file holds the options.
"""
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engineering.lraspp import LRASPPBaseline
from mask_set import MaskSet
from sam_teacher import load_sam
from sbm import SemanticBridgingModule
from student import MobileNetEncoder, MobileNetUNet

CHECKPOINT_KEYS = {"epoch", "args", "student", "sbm", "student_weights"}
# SAM sees every image with its longest side at 1024 pixels (segment-anything's ResizeLongestSide).
SAM_INPUT_SIZE = 1024


def build_student(architecture: str, num_outputs: int, encoder: str = "efficientnet_lite0",
                  pretrained: bool = True) -> nn.Module:
    """architecture "unet" (MobileNetUNet, SoccerSAM's student) or "lraspp" (torchvision's LRASPP, the
    real-time peer of Table 1's comparison; no encoder choice)."""
    if architecture == "unet":
        return MobileNetUNet(num_outputs=num_outputs, encoder=encoder, pretrained=pretrained)
    if architecture == "lraspp":
        return LRASPPBaseline(num_outputs=num_outputs)
    raise ValueError(f"unknown student architecture {architecture!r}: choose 'unet' or 'lraspp'")


class SamImageEncoder(nn.Module):
    """SAM's ViT image encoder as the SBM's frozen backbone F (train.py's `--sbm-backbone sam`): our option
    for users with a SAM checkpoint; the paper says only that F is a frozen pretrained backbone.
    (B, 3, H, W) in [0, 1] -> [(B, 256, H / 16, W / 16)]."""

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


def build_sbm(clusters: int, backbone: str = "efficientnet_lite0",
              sam_checkpoint: str | None = None) -> SemanticBridgingModule:
    """The SBM on its frozen backbone (--sbm-backbone): an ImageNet encoder like the student's, whose weights
    install offline (the default; "random" is the untrained ablation), or SAM's image encoder."""
    if backbone == "sam":
        return SemanticBridgingModule(SamImageEncoder(sam_checkpoint), [0], clusters)
    encoder = MobileNetEncoder("efficientnet_lite0" if backbone == "random" else backbone,
                               pretrained=backbone != "random")
    # Strides 8, 16, 32: stride 8 keeps the ball (a few pixels at 416 x 608) inside some feature
    # cell, strides 16 and 32 bring the context that tells a referee from a player.
    return SemanticBridgingModule(encoder, [2, 3, 4], clusters)


def load_checkpoint(path: str | Path) -> dict:
    """A train.py checkpoint (RUN/checkpoint.pt or RUN/fold-F/checkpoint.pt) as the dict train.py saved;
    a missing file, or one that is not a train.py checkpoint, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: pass the checkpoint.pt of a train.py run "
                                "folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        state = None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        raise ValueError(f"{path} is not a checkpoint written by train.py: pass RUN/checkpoint.pt of a "
                         "train.py run")
    return state


def trained_student(state: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The student saved in a train.py checkpoint (`load_checkpoint`), in eval mode."""
    args = state["args"]
    student = build_student(args["student"], args["clusters"], args["encoder"], pretrained=False)
    student.load_state_dict(state["student"])
    return student.to(device).eval()


def trained_sbm(state: dict, device: str | torch.device = "cpu") -> SemanticBridgingModule:
    """The SBM saved in a label-free train.py checkpoint, in eval mode."""
    args = state["args"]
    sbm = build_sbm(args["clusters"], args["sbm_backbone"], args["sam_checkpoint"])
    sbm.load_state_dict(state["sbm"])
    return sbm.to(device).eval()


@torch.no_grad()
def prior_region_classes(checkpoint: str | Path, frames: list[tuple[torch.Tensor, MaskSet]],
                         num_classes: int, device: torch.device) -> list[torch.Tensor]:
    """ANALYSIS ONLY (uses labels): each region's class is the majority of what a
    supervised student (its checkpoint) predicts over its pixels. frames: (image, masks) on `device`."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--sbm-prior: no checkpoint at {checkpoint}; train a --supervised run "
                                "with the same folds")
    state = load_checkpoint(checkpoint)
    if not state["args"]["supervised"]:
        raise ValueError(f"--sbm-prior {checkpoint}: not a --supervised run")
    prior, classes = trained_student(state, device), []
    for image, masks in frames:
        predicted, covered = prior(image[None])[0].argmax(0), masks.segments >= 0
        pixels = torch.bincount(masks.segments[covered] * num_classes + predicted[covered],
                                minlength=masks.num_segments * num_classes).view(-1, num_classes)
        classes.append((masks.membership.float() @ pixels.float()).argmax(dim=1))
    return classes
