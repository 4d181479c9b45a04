"""Tests of pidinet.py: the released checkpoint loads and finds football boundaries, its errors are one
line, and the converted kernels equal the paper's pixel-difference definitions."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from classes import ADVERTISEMENT, AUDIENCE, GROUND, TEAM_A, TEAM_B
from data import FSSOD
from stand_ins.pidinet import DEFAULT_WEIGHTS, PiDiNet, load_pidinet

SHARED = Path(__file__).resolve().parents[2] / "shared"


def median_edges(edges: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Median edge value on the ad-board border, on player outlines and inside the grass.

    edges, label: (H, W). A border pixel is one of either side with a neighbour of the other side;
    inside the grass means ground farther than 8 px from any other class.
    """
    def border(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (ndimage.binary_dilation(a) & b) | (ndimage.binary_dilation(b) & a)

    ground = label == GROUND
    places = {
        "board border": border(label == ADVERTISEMENT, np.isin(label, [GROUND, AUDIENCE])),
        "player outline": border(np.isin(label, [TEAM_A, TEAM_B]), ground),
        "grass": ndimage.distance_transform_edt(ground) > 8,
    }
    assert all(place.sum() > 500 for place in places.values()), "too few pixels to measure a place"
    return {name: float(np.median(edges[place])) for name, place in places.items()}


def test_checkpoint_finds_board_border_and_player_outlines_not_grass():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found")
    frames = FSSOD(SHARED / "fssod", "train", (416, 608), labels=True)
    item = frames[frames.names.index("Frame 1  (11).jpg")]
    network = load_pidinet(DEFAULT_WEIGHTS)
    with torch.no_grad():
        edges = network(item["image"][None])
    assert edges.shape == (1, 1, 416, 608) and 0 <= edges.min() and edges.max() <= 1
    median = median_edges(edges[0, 0].numpy(), item["label"].numpy())
    # Measured: 0.89 on the board border, 0.94 on player outlines, 0.0001 inside the grass. A
    # random-weight network gives the same 0.4-0.6 everywhere and fails the grass bound.
    assert median["board border"] > 0.5 and median["player outline"] > 0.5, median
    assert median["grass"] < 0.02, median


def test_any_input_size_gives_a_map_of_that_size():
    with torch.no_grad():
        edges = PiDiNet().eval()(torch.rand(2, 3, 37, 50))
    assert edges.shape == (2, 1, 37, 50)


def test_missing_and_garbage_weights_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="table5_pidinet.pth.*hellozhuo/pidinet") as missing:
        load_pidinet(tmp_path / "table5_pidinet.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint") as unreadable:
        load_pidinet(garbage)
    misfit = tmp_path / "misfit.pth"
    torch.save({"state_dict": {"module.init_block.weight": torch.zeros(60, 3, 3, 3)}}, misfit)
    with pytest.raises(ValueError, match="does not fit PiDiNet") as not_fitting:
        load_pidinet(misfit)
    for error in (missing, unreadable, not_fitting):
        assert "\n" not in str(error.value) and "weights_only" not in str(error.value)


def pixel_difference(pdc: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The paper's definitions, written out on patches, for a depthwise layer.

    x: (B, C, H, W), w: (C, 1, 3, 3) -> (B, C, H, W); zero padding as the convolutions have.
    Positions 0..8 of a 3x3 window run row by row (4 is the centre), of a 5x5 window 0..24.
    """
    batch, channels, height, width = x.shape
    w = w.reshape(1, channels, 9, 1)
    if pdc in ("cv", "cd", "ad"):
        patch = F.unfold(x, 3, padding=1).reshape(batch, channels, 9, -1)
        if pdc == "cv":  # sum_i w_i x_i
            terms = w * patch
        elif pdc == "cd":  # sum_i w_i (x_i - x_centre)
            terms = w * (patch - patch[:, :, 4:5])
        else:  # sum_i w_i (x_i - x_j), j the next position clockwise round the ring 0 1 2 5 8 7 6 3
            ring = [0, 1, 2, 5, 8, 7, 6, 3]
            clockwise = torch.arange(9)
            clockwise[ring] = torch.tensor(ring[1:] + ring[:1])
            terms = w * (patch - patch[:, :, clockwise])
    else:  # rd: sum_k w_k (x_outer_k - x_inner_k) along the 8 rays of a 5x5 window, w_1..w_8 used
        patch = F.unfold(x, 5, padding=2).reshape(batch, channels, 25, -1)
        outer, inner = [0, 2, 4, 10, 14, 20, 22, 24], [6, 7, 8, 11, 13, 16, 17, 18]
        terms = w[:, :, 1:] * (patch[:, :, outer] - patch[:, :, inner])
    return terms.sum(2).reshape(batch, channels, height, width)


def test_converted_kernels_equal_pixel_differences():
    torch.manual_seed(0)
    network = PiDiNet()
    x = torch.randn(1, 60, 9, 9)
    # Layers 1-4 of carv4, all depthwise on 60 channels: one of each type.
    for name, pdc in {"block1_1": "ad", "block1_2": "rd", "block1_3": "cv", "block2_1": "cd"}.items():
        layer = getattr(network, name).conv1
        assert layer.pdc == pdc
        with torch.no_grad():
            expected, converted = pixel_difference(pdc, x, layer.weight), layer(x)
        assert torch.allclose(converted, expected, rtol=1e-4, atol=1e-5), pdc
