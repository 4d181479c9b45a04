"""torchvision's LRASPP-MobileNetV3-Large: the real-time segmenter the student is measured against.

Not the paper's method: the peer of SPEC's speed references (the student should be at least as fast) and,
trained by `train.py --student lraspp`, an accuracy comparison for Table 1. studies/benchmark.py times it,
predict.py runs its checkpoints.
"""
import torch
from torch import nn


class LRASPPBaseline(nn.Module):
    """torchvision's LRASPP-MobileNetV3-Large, the real-time segmenter the student is measured
    against (benchmark.py for speed, `train.py --student lraspp` for accuracy). Random weights:
    its ImageNet weights need a download. forward(x: (B, 3, H, W)) -> logits (B, num_outputs, H, W)."""

    def __init__(self, num_outputs: int = 11):
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        self.model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_outputs)
        self.weights_description = "torchvision LRASPP-MobileNetV3-Large, random weights"

    def describe(self) -> str:
        parameters = sum(p.numel() for p in self.parameters())
        return f"{self.weights_description}: {parameters / 1e6:.2f} M parameters"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]
