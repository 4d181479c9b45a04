"""The networks of a run: built from its settings, or read back from the checkpoint train.py wrote.

A run trains two networks (paper section 3.1): the student (student.py) and the Semantic Bridging
Module on its frozen backbone (sbm.py). train.py builds them here; evaluate.py and predict.py read a
finished run's `checkpoint.pt` back into them, with a one-line error for a file that is not one.
"""
from pathlib import Path

import torch
from torch import nn

from mask_set import MaskSet
from sam_teacher import SamImageEncoder
from sbm import SemanticBridgingModule
from student import MobileNetEncoder, build_student

CHECKPOINT_KEYS = {"epoch", "args", "student", "sbm", "student_weights"}


def build_sbm(clusters: int, backbone: str = "efficientnet_lite0",
              sam_checkpoint: str | None = None) -> SemanticBridgingModule:
    """The SBM on its frozen backbone (--sbm-backbone): SAM's image encoder, the paper's, or an ImageNet
    encoder like the student's, whose weights install offline ("random" is the untrained ablation)."""
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
    # A checkpoint saved before issue 36 holds the stride-2 decoder and does not say so.
    student = build_student(args["student"], args["clusters"], args["encoder"], pretrained=False,
                            decoder_stride=args.get("decoder_stride", 2))
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
