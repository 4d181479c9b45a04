"""PiDiNet, a small class-agnostic edge detector: the stand-in for SAM's boundaries.

PiDiNet ("Pixel Difference Networks for Efficient Edge Detection", Su et al., ICCV 2021,
github.com/hellozhuo/pidinet) is a 0.7 M-parameter CNN whose convolutions look at pixel differences
rather than raw intensities. Its released checkpoint `table5_pidinet.pth` (configuration carv4 with
CSAM and CDCM, 60 channels) was trained on BSDS500 + PASCAL boundaries, no football data. It is here
because, when no SAM checkpoint is at hand, its edge map gives the object-level, class-agnostic
boundaries that SAM's masks would (sam_teacher.py, source "boundary"). Code and weights: MIT licence,
which the authors preface with "just for research purpose, and commercial use should be contacted
with authors first".

The paper's pixel-difference convolutions (PDC: cd, ad, rd) are linear in the input, so each equals
an ordinary convolution with a rearranged kernel; the authors' models/convert_pidinet.py uses this for
fast inference. We keep the checkpoint's raw weights as the parameters (so its state_dict loads unchanged)
and convert them on the fly in forward, as that file does: cd and ad give a 3x3 kernel, rd a 5x5 one.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# Where the weights are looked for: weights/ in this repository (put the download there), then the
# ../shared folder beside it, which the project's tests and CI have.
_REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = next((path for path in (_REPO / "weights/table5_pidinet.pth",
                                          _REPO.parent / "shared/weights/pidinet/table5_pidinet.pth")
                        if path.is_file()), _REPO / "weights/table5_pidinet.pth")
# Configuration carv4 (models/config.py): the 16 pixel-difference layers cycle through these types.
CARV4 = ("cd", "ad", "rd", "cv") * 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_HELP = ("PiDiNet's table5_pidinet.pth is in github.com/hellozhuo/pidinet, folder trained_models/; "
                "download it into weights/ of this repository")


def convert_pdc(pdc: str, weight: torch.Tensor) -> torch.Tensor:
    """A pixel-difference kernel as an ordinary one (models/convert_pidinet.py).

    weight: (C_out, C_in, 3, 3) raw kernel w -> (C_out, C_in, 3, 3), or (C_out, C_in, 5, 5) for rd.
    Kernel positions are numbered 0..8 row by row, 4 is the centre.
    """
    if pdc == "cv":  # vanilla: sum_i w_i x_i
        return weight
    out_channels, in_channels = weight.shape[:2]
    w = weight.reshape(out_channels, in_channels, 9)
    if pdc == "cd":  # central difference: sum_i w_i (x_i - x_centre), i.e. sum(w) taken off the centre
        kernel = w.clone()
        kernel[:, :, 4] -= w.sum(-1)
        return kernel.reshape(weight.shape)
    if pdc == "ad":  # angular difference: sum_i w_i (x_i - x_next), x_next the clockwise neighbour of x_i
        return (w - w[:, :, [3, 0, 1, 6, 4, 2, 7, 8, 5]]).reshape(weight.shape)
    if pdc == "rd":  # radial difference on a 5x5 window: sum_k w_k (x_outer_k - x_inner_k), w_1..w_8 used
        kernel = w.new_zeros(out_channels, in_channels, 25)
        kernel[:, :, [0, 2, 4, 10, 14, 20, 22, 24]] = w[:, :, 1:]
        kernel[:, :, [6, 7, 8, 11, 13, 16, 17, 18]] = -w[:, :, 1:]
        return kernel.reshape(out_channels, in_channels, 5, 5)
    raise ValueError(f"unknown pixel-difference type {pdc!r}; use cv, cd, ad or rd")


class PixelDifferenceConv(nn.Module):
    """A 3x3 pixel-difference convolution without bias (models/ops.py `Conv2d`), run as a vanilla one.

    x: (B, C_in, H, W) -> (B, C_out, H, W).
    """

    def __init__(self, pdc: str, in_channels: int, out_channels: int, groups: int = 1) -> None:
        super().__init__()
        self.pdc, self.groups = pdc, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = convert_pdc(self.pdc, self.weight)
        return F.conv2d(x, kernel, padding=kernel.shape[-1] // 2, groups=self.groups)


class PDCBlock(nn.Module):
    """Residual block (paper Fig. 5): [max-pool] -> depthwise PDC -> ReLU -> 1x1 conv, plus a shortcut
    (a 1x1 conv when the block halves the resolution and changes the width).

    x: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride), rounded down.
    """

    def __init__(self, pdc: str, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        if stride > 1:
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv1 = PixelDifferenceConv(pdc, in_channels, in_channels, groups=in_channels)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = self.pool(x)
        y = self.conv2(self.relu2(self.conv1(x)))
        return y + (self.shortcut(x) if self.stride > 1 else x)


class CDCM(nn.Module):
    """Compact Dilation Convolution Module: 1x1 conv, then four 3x3 convs dilated 5, 7, 9, 11, summed.

    x: (B, C_in, H, W) -> (B, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        for index, dilation in enumerate((5, 7, 9, 11), start=1):
            self.add_module(f"conv2_{index}", nn.Conv2d(out_channels, out_channels, kernel_size=3,
                                                        dilation=dilation, padding=dilation, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(x))
        return self.conv2_1(x) + self.conv2_2(x) + self.conv2_3(x) + self.conv2_4(x)


class CSAM(nn.Module):
    """Compact Spatial Attention Module: x times a sigmoid spatial gate. x: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, 4, kernel_size=1)
        self.conv2 = nn.Conv2d(4, 1, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv2(self.conv1(self.relu1(x))))


class MapReduce(nn.Module):
    """1x1 conv to one side-output edge logit map. x: (B, C, H, W) -> (B, 1, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PiDiNet(nn.Module):
    """PiDiNet carv4 with CSAM and CDCM (the authors' `pidinet_converted` with --sa --dil), parameter
    names and shapes exactly those of table5_pidinet.pth (without the `module.` prefix).

    Four stages of 3, 4, 4, 4 PDC blocks at widths C, 2C, 4C, 4C (C = 60), each stage after the first
    at half the resolution; each stage's output -> CDCM -> CSAM -> a side edge logit map, upsampled
    bilinearly to the input size; a 1x1 conv fuses the four into the final map.
    """

    def __init__(self, channels: int = 60, dilation_channels: int = 24,
                 pdcs: tuple[str, ...] = CARV4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.init_block = PixelDifferenceConv(pdcs[0], 3, channels)
        widths = (channels, 2 * channels, 4 * channels, 4 * channels)
        self.stages: list[list[str]] = []
        layer, in_channels = 1, channels
        for stage, (width, depth) in enumerate(zip(widths, (3, 4, 4, 4)), start=1):
            names = []
            for index in range(1, depth + 1):
                stride = 2 if stage > 1 and index == 1 else 1
                names.append(f"block{stage}_{index}")
                self.add_module(names[-1], PDCBlock(pdcs[layer], in_channels, width, stride))
                layer, in_channels = layer + 1, width
            self.stages.append(names)
        self.dilations = nn.ModuleList(CDCM(width, dilation_channels) for width in widths)
        self.attentions = nn.ModuleList(CSAM(dilation_channels) for _ in widths)
        self.conv_reduces = nn.ModuleList(MapReduce(dilation_channels) for _ in widths)
        self.classifier = nn.Conv2d(4, 1, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) RGB in [0, 1], any H, W -> (B, 1, H, W) fused edge probability in [0, 1]."""
        height, width = images.shape[-2:]
        # Channels-last runs the depthwise and 1x1 convolutions about 3x faster on CPU (same result).
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        x = self.init_block(x)
        side_logits = []
        for stage, names in enumerate(self.stages):
            for name in names:
                x = getattr(self, name)(x)
            side = self.conv_reduces[stage](self.attentions[stage](self.dilations[stage](x)))
            side_logits.append(F.interpolate(side, (height, width), mode="bilinear", align_corners=False))
        # The original returns the sigmoids of the four side maps and of the fused one; we keep the fused.
        return torch.sigmoid(self.classifier(torch.cat(side_logits, dim=1)))


def load_pidinet(path: str | Path, device: str | torch.device = "cpu") -> PiDiNet:
    """table5_pidinet.pth -> PiDiNet on `device`, in eval mode.

    A missing file raises FileNotFoundError; a file that is no torch checkpoint, or whose state_dict
    is not PiDiNet carv4's, raises ValueError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PiDiNet weights {path} not found: {WEIGHTS_HELP}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a damaged file; the cause is always the file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint; {WEIGHTS_HELP}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds no state_dict; {WEIGHTS_HELP}")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    network = PiDiNet()
    expected = {key: value.shape for key, value in network.state_dict().items()}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    misshaped = [key for key in set(expected) & set(state)
                 if getattr(state[key], "shape", None) != expected[key]]
    if missing or unexpected or misshaped:
        raise ValueError(f"{path}: its state_dict does not fit PiDiNet carv4 (60 channels, CSAM, CDCM): "
                         f"{len(missing)} weights missing, {len(unexpected)} unexpected, {len(misshaped)} "
                         f"mis-shaped; {WEIGHTS_HELP}")
    network.load_state_dict(state, strict=True)
    return network.to(device).eval()
