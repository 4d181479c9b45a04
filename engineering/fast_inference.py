"""A trained network made fast for inference: the same logits with fewer passes over memory.

Engineering, not the paper: predict.py and studies/benchmark.py use it on a trained student (student.py)
or LRASPP (lraspp.py). Around its convolutions the shipped EfficientNet-Lite0 runs a batch norm, a ReLU6
into a new tensor and a padded copy of each depthwise convolution's input, all at the widest layers' size
(96 channels at stride 2). `fuse_for_inference` folds the batch norms and ReLU6 copies away, and the padding
too unless told not to; `inference_copy` says which of the two a device gets, and why. On a CPU, everything
folded takes about a third off the student's encoder (studies/benchmark.py, the "fused" rows).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

# The convolution and batch-norm pairs of an EfficientNet(-Lite) MBConv block (efficientnet_lite_pytorch's
# MBConvBlock); its stem, like every torchvision and decoder pair, sits side by side in an nn.Sequential.
EFFICIENTNET_CONV_BN = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


@torch.no_grad()
def _fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(x)) for an eval-mode bn, with s = gamma / sqrt(var + eps):
    w' = w * s, b' = (b - mean) * s + beta."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every batch norm folded into the convolution before it (for
    inference only: the folded statistics are the running ones). Pairs: a Conv2d followed by a
    BatchNorm2d in an nn.Sequential, and the pairs of EFFICIENTNET_CONV_BN."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        pairs = [(a, b) for a, b in EFFICIENTNET_CONV_BN if hasattr(module, a) and hasattr(module, b)]
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs += list(zip(names, names[1:]))
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                _fold_batchnorm(conv, bn)
                setattr(module, bn_name, nn.Identity())
    return model


@torch.no_grad()
def fold_same_padding(model: nn.Module) -> nn.Module:
    """`model` with the TF "SAME" padding of Lite0's convolutions moved into the convolution, in place.

    efficientnet_lite_pytorch pads every input with an nn.ZeroPad2d (`static_padding`), a full copy of
    the tensor, then convolves unpadded. Symmetric padding becomes the convolution's own. A stride-2
    convolution is padded one more at the right and bottom (p, p + 1): the kernel grows by a zero row
    at the top and a zero column at the left, and the convolution pads p + 1 on every side, so each
    output sums the same inputs with the same weights (a 4 x 4 kernel for a 3 x 3 one: a little more
    arithmetic in place of a copy of the input).
    """
    for conv in model.modules():
        pad = getattr(conv, "static_padding", None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(pad, nn.ZeroPad2d):
            continue
        left, right, top, bottom = pad.padding
        if (left, top) == (right, bottom):
            conv.padding = (top, left)
        elif (right, bottom) == (left + 1, top + 1):
            conv.weight = nn.Parameter(F.pad(conv.weight, (1, 0, 1, 0)))
            conv.kernel_size, conv.padding = tuple(conv.weight.shape[-2:]), (bottom, right)
        else:
            continue
        conv.static_padding = nn.Identity()
    return model


def fuse_for_inference(model: nn.Module, fold_padding: bool = True) -> nn.Module:
    """An eval-mode copy of `model` (a MobileNetUNet or a torchvision network) that gives the same
    logits to float rounding: batch norms folded (`fuse_batchnorm`), its ReLU6 applied in place (each
    writes over the output of the convolution before it, read by nothing else) and, if `fold_padding`,
    Lite0's padding moved into its convolutions (`fold_same_padding`: a copy of the input saved, but a
    stride-2 kernel grows from 3 x 3 to 4 x 4 and from 5 x 5 to 6 x 6)."""
    model = fuse_batchnorm(model)
    if fold_padding:
        model = fold_same_padding(model)
    for module in model.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True
    return model


# Whether `inference_copy` moves Lite0's padding into its convolutions, by device type (measured: RESULTS.md,
# Speed, and studies/benchmark.py's fusion table and "layers" rows); no other device was measured.
FOLD_PADDING = {
    "cpu": True,  # a padded channels_last copy costs 6-10x the convolution after it; the grown kernel 1.2x
    "cuda": False,  # the grown 4 x 4 and 6 x 6 depthwise kernels ran at 0.17-0.20x the padded copy + kernel
}


def inference_copy(model: nn.Module, device: torch.device | str) -> nn.Module:
    """The copy of `model` to run for inference on `device`: `fuse_for_inference`, with Lite0's padding
    folded where FOLD_PADDING says it pays."""
    return fuse_for_inference(model, fold_padding=FOLD_PADDING.get(torch.device(device).type, False))
