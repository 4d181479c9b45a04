"""engineering/fast_inference.py: the inference copy computes the logits of the trained network."""
import pytest
import torch

from engineering.fast_inference import fuse_batchnorm, fuse_for_inference, inference_copy
from engineering.lraspp import LRASPPBaseline
from student import MobileNetUNet


def randomise_batchnorm_statistics(model: torch.nn.Module) -> None:
    """Running statistics and affine weights away from their init, so that folding them is tested."""
    generator = torch.Generator().manual_seed(0)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            for tensor, low, high in ((bn.running_mean, -0.5, 0.5), (bn.running_var, 0.5, 2.0),
                                      (bn.weight.data, 0.5, 1.5), (bn.bias.data, -0.5, 0.5)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


@pytest.mark.parametrize("fold_padding", [True, False])
@pytest.mark.parametrize("build", [lambda: MobileNetUNet(num_outputs=5),  # Lite0's ImageNet statistics
                                   lambda: MobileNetUNet(num_outputs=5, encoder="mobilenet_v3",
                                                         pretrained=False),
                                   lambda: LRASPPBaseline(num_outputs=5)])
def test_fused_model_gives_the_logits_of_the_unfused_one(build, fold_padding):
    model = build().eval()
    randomise_batchnorm_statistics(model.decoder if isinstance(model, MobileNetUNet)
                                   and model.encoder_name == "efficientnet_lite0" else model)
    fused = fuse_for_inference(model, fold_padding=fold_padding)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    padded = any(isinstance(m, torch.nn.ZeroPad2d) for m in model.modules())  # Lite0's, not torchvision's
    assert any(isinstance(m, torch.nn.ZeroPad2d) for m in fused.modules()) == (padded and not fold_padding)
    # The model itself is left as it was, batch norms and padding included.
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(fused(x), expected, atol=1e-4, rtol=0)
        channels_last = fused.to(memory_format=torch.channels_last)
        assert torch.allclose(channels_last(x.contiguous(memory_format=torch.channels_last)), expected,
                              atol=1e-4, rtol=0)


def test_fuse_batchnorm_alone_folds_every_batch_norm():
    model = MobileNetUNet(num_outputs=5).eval()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-4, rtol=0)


def test_inference_copy_grows_the_stride_2_kernels_on_a_cpu_only():
    model = MobileNetUNet(num_outputs=5).eval()

    def kernel_sizes(net: torch.nn.Module) -> set[int]:
        return {m.kernel_size[0] for m in net.modules() if isinstance(m, torch.nn.Conv2d)}

    assert kernel_sizes(model) == {1, 3, 5}
    assert kernel_sizes(inference_copy(model, "cpu")) == {1, 3, 4, 5, 6}
    # A CUDA device is only named here: the copy stays on the CPU, with Lite0's kernels and padding.
    on_gpu = inference_copy(model, torch.device("cuda"))
    assert kernel_sizes(on_gpu) == {1, 3, 5} and not any(isinstance(m, torch.nn.BatchNorm2d)
                                                          for m in on_gpu.modules())
