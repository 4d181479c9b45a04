"""The mask sources (sam_teacher.py, regions.py), the MaskSet they are stored as, and the mask cache."""
import json
import os
import types

import numpy as np
import pytest
import torch
from scipy import ndimage

from mask_set import MaskSet
from stand_ins.regions import OracleTeacher, SuperpixelTeacher, connected_regions, masks_from_regions
from models import SamImageEncoder
from sam_teacher import CACHE_FORMAT, MaskCache, SamTeacher, build_cache, make_teacher
from stand_ins.synthetic import SyntheticScenes, make_scene

SIZE = (64, 96)


def assert_mask_format(masks: np.ndarray, size: tuple[int, int]) -> None:
    assert isinstance(masks, np.ndarray) and masks.dtype == bool
    assert masks.ndim == 3 and masks.shape[1:] == size
    areas = masks.reshape(len(masks), -1).sum(1)
    assert np.all(np.diff(areas) <= 0), "masks must be sorted by area, largest first"


def test_sam_automatic_mask_generator_with_random_weights():
    image, _ = make_scene(0, SIZE)
    # Thresholds at 0 so that random weights still return masks whose format can be checked.
    teacher = SamTeacher(random_weights=True, points_per_side=2, pred_iou_thresh=0.0,
                         stability_score_thresh=0.0)
    masks = teacher(image)
    assert len(masks) > 0
    assert_mask_format(masks, SIZE)
    assert teacher.settings["source"] == "sam" and teacher.settings["checkpoint"] is None


def test_sam_checkpoint_errors_name_the_official_checkpoints_and_the_flag(tmp_path):
    url = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
    with pytest.raises(FileNotFoundError) as missing:
        make_teacher("sam", sam_checkpoint=str(tmp_path / "sam_vit_b_01ec64.pth"))
    message = str(missing.value)
    assert url in message and "--sam-checkpoint" in message and "sam_vit_b_01ec64.pth" in message
    # No checkpoint at all: refused, never SAM with random weights.
    with pytest.raises(FileNotFoundError, match="needs SAM's weights.*--sam-checkpoint"):
        make_teacher("sam")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read SAM checkpoint") as unreadable:
        SamTeacher(checkpoint=str(garbage))
    assert url in str(unreadable.value) and "weights_only" not in str(unreadable.value)
    assert "\n" not in str(unreadable.value)

    # A checkpoint of another network, and a SAM checkpoint cut short, are refused in one line too.
    wrong = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="not a segment-anything checkpoint"):
        SamTeacher(checkpoint=str(wrong))
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, wrong)
    with pytest.raises(ValueError, match="does not fit SAM ViT-B, ViT-L or ViT-H") as mismatched:
        SamTeacher(checkpoint=str(wrong))
    assert url in str(mismatched.value)


def test_superpixels_partition_the_frame():
    image, _ = make_scene(1, SIZE)
    masks = SuperpixelTeacher()(image)
    assert len(masks) > 1
    assert_mask_format(masks, SIZE)
    assert np.array_equal(masks.sum(0), np.ones(SIZE, dtype=int))


def test_superpixels_separate_a_small_object_from_the_pitch():
    image = np.zeros((*SIZE, 3), dtype=np.uint8)
    image[:] = (40, 140, 40)
    image[30:36, 40:46] = (250, 250, 250)
    masks = SuperpixelTeacher()(image)
    ball = np.zeros(SIZE, dtype=bool)
    ball[30:36, 40:46] = True
    assert any(np.array_equal(mask, ball) for mask in masks)


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="Unknown mask source"):
        make_teacher("clip")
    with pytest.raises(ValueError, match="takes none"):
        make_teacher("superpixel", sam_checkpoint="sam_vit_b_01ec64.pth")


def test_oracle_masks_are_single_class_components_and_warn():
    image, label = make_scene(2, SIZE)
    label[:3, :3] = 255
    teacher = OracleTeacher()
    with pytest.warns(UserWarning, match="analysis only"):
        masks = teacher(image, label)
    with pytest.warns(UserWarning, match="analysis only"):
        teacher(image, label)
    assert_mask_format(masks, SIZE)
    labelled = label != 255
    assert np.array_equal(masks.sum(0), labelled.astype(int))
    expected_components = 0
    for class_id in np.unique(label[labelled]):
        expected_components += ndimage.label(label == class_id, structure=np.ones((3, 3)))[1]
    assert len(masks) == expected_components
    for mask in masks:
        assert len(np.unique(label[mask])) == 1
        assert ndimage.label(mask, structure=np.ones((3, 3)))[1] == 1


def test_oracle_splits_two_separate_regions_of_one_class():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    label = np.full((8, 8), 3)
    label[1:3, 1:3] = 9
    label[5:7, 5:7] = 9
    with pytest.warns(UserWarning):
        masks = OracleTeacher()(image, label)
    assert len(masks) == 3 and masks[0].sum() == 56 and masks[1].sum() == masks[2].sum() == 4


def test_connected_regions_split_each_id_into_8_connected_pieces():
    segmentation = np.array([[0, 0, 1, 1],
                             [0, 1, 0, 1],
                             [2, 2, 0, 9],
                             [1, 2, 0, 9]])
    regions = connected_regions(segmentation, ignore_index=9)
    assert (regions[segmentation == 9] == -1).all()
    # 0: one piece, joined across a diagonal; 1: two pieces, the lone 1 at the bottom left apart; 2: one.
    assert len(np.unique(regions[regions >= 0])) == 4
    for region in np.unique(regions[regions >= 0]):
        assert len(np.unique(segmentation[regions == region])) == 1


class StopAfter:
    """A dataset that fails after `limit` items, as an interrupted run would."""

    def __init__(self, dataset, limit: int) -> None:
        self.dataset, self.limit, self.served = dataset, limit, 0
        self.names = dataset.names

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        self.served += 1
        if self.served > self.limit:
            raise KeyboardInterrupt
        return self.dataset[index]


def read_folder(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_cache_round_trips_exactly(tmp_path):
    dataset = SyntheticScenes(3, size=SIZE, seed=5)
    teacher = SuperpixelTeacher()
    cache = build_cache(dataset, teacher, tmp_path / "cache", progress=False)
    assert cache.names == sorted(dataset.names)
    assert cache.settings == dict(teacher.settings, image_size=list(SIZE), format=CACHE_FORMAT)
    for item in dataset:
        image = (item["image"].numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0)
        expected = teacher(image)
        assert item["name"] in cache
        assert np.array_equal(cache.load(item["name"]).dense().numpy(), expected)
    assert "missing.png" not in cache


def test_interrupted_cache_resumes_to_identical_files(tmp_path):
    dataset = SyntheticScenes(5, size=SIZE, seed=7)
    build_cache(dataset, SuperpixelTeacher(), tmp_path / "whole", progress=False)
    interrupted = StopAfter(dataset, limit=3)
    with pytest.raises(KeyboardInterrupt):
        build_cache(interrupted, SuperpixelTeacher(), tmp_path / "resumed", progress=False)
    assert 0 < len(MaskCache(tmp_path / "resumed").names) < len(dataset)
    resumed = StopAfter(dataset, limit=len(dataset))
    build_cache(resumed, SuperpixelTeacher(), tmp_path / "resumed", progress=False)
    # Finished frames are skipped: only the first item (for the image size) and the missing ones are read.
    assert resumed.served < len(dataset)
    assert read_folder(tmp_path / "resumed") == read_folder(tmp_path / "whole")
    assert not any(name.endswith(".tmp") or name.startswith(".") for name in os.listdir(tmp_path / "resumed"))


def test_cache_with_other_settings_is_refused(tmp_path):
    dataset = SyntheticScenes(2, size=SIZE, seed=1)
    build_cache(dataset, SuperpixelTeacher(scale=150), tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings") as error:
        build_cache(dataset, SuperpixelTeacher(scale=300), tmp_path, progress=False)
    assert "scale" in str(error.value) and "--out" in str(error.value)
    with pytest.raises(ValueError, match="other settings"):
        build_cache(SyntheticScenes(2, size=(32, 64), seed=1), SuperpixelTeacher(scale=150), tmp_path,
                    progress=False)
    with pytest.raises(ValueError, match="source"):
        MaskCache(tmp_path, expected_settings={"source": "sam"})
    assert MaskCache(tmp_path, expected_settings={"source": "superpixel", "image_size": SIZE}).names


def test_oracle_cache_reads_labels(tmp_path):
    dataset = SyntheticScenes(2, size=SIZE, seed=3, labels=True)
    with pytest.warns(UserWarning, match="analysis only"):
        cache = build_cache(dataset, OracleTeacher(), tmp_path, progress=False)
    label = dataset[0]["label"].numpy()
    masks = cache.load(dataset.names[0])
    for mask in masks.dense().numpy():
        assert len(np.unique(label[mask])) == 1
    with pytest.raises(ValueError, match="the ground truth"):
        build_cache(SyntheticScenes(2, size=SIZE, seed=3), OracleTeacher(), tmp_path / "unlabelled",
                    progress=False)


def test_missing_cache_or_frame_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python3 sam_teacher.py .*--source oracle"):
        MaskCache(tmp_path / "nowhere", expected_settings={"source": "oracle"})
    cache = build_cache(SyntheticScenes(1, size=SIZE), SuperpixelTeacher(), tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="python3 sam_teacher.py .*--source superpixel"):
        cache.load("Frame 1  (1).jpg")


def test_mask_set_holds_overlapping_masks_as_segments():
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(6, 9, 11, generator=g) > 0.7
    masks[4] = False  # an empty mask is dropped
    masks[:, 8, 10] = False  # a pixel no mask covers
    mask_set = MaskSet.from_masks(masks)
    kept = masks[[0, 1, 2, 3, 5]]
    assert torch.equal(mask_set.dense(), kept)
    assert torch.equal(mask_set.areas(), kept.flatten(1).sum(1).float())
    assert mask_set.segments[8, 10] == -1
    # Pixels share a segment exactly when the same masks cover them.
    signatures = kept.flatten(1).T
    segments = mask_set.segments.flatten()
    for p in range(0, segments.numel(), 7):
        same = segments == segments[p]
        assert torch.equal(same, (signatures == signatures[p]).all(dim=1))


def test_a_partition_is_one_segment_per_mask():
    regions = np.arange(20).reshape(4, 5) // 3
    regions[0, 0] = -1
    mask_set = MaskSet.from_masks(masks_from_regions(regions))
    assert torch.equal(mask_set.membership, torch.eye(len(mask_set), dtype=torch.bool))
    assert torch.equal(mask_set.dense(), torch.from_numpy(masks_from_regions(regions)))


def test_cache_in_an_older_layout_is_refused_with_a_rebuild_hint(tmp_path):
    build_cache(SyntheticScenes(1, size=SIZE), SuperpixelTeacher(), tmp_path, progress=False)
    settings = json.loads((tmp_path / "settings.json").read_text())
    del settings["format"]
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="older layout.*rebuild"):
        MaskCache(tmp_path)


def test_sam_image_encoder_feeds_sam_a_padded_1024_square_and_crops_the_padding(monkeypatch):
    """SAM's encoder as the SBM's F, on a stand-in for SAM (a stride-16 convolution, no download)."""
    seen = []

    def encoder(x):
        seen.append(x)
        return torch.nn.functional.conv2d(x, torch.ones(256, 3, 16, 16), stride=16)

    fake_sam = types.SimpleNamespace(image_encoder=encoder, model_type="vit_b",
                                     pixel_mean=torch.zeros(3), pixel_std=torch.full((3,), 255.0))
    monkeypatch.setattr("models.load_sam", lambda checkpoint: fake_sam)
    image = torch.rand(1, 3, *SIZE)
    features = SamImageEncoder("sam_vit_b_01ec64.pth")(image)
    assert seen[0].shape == (1, 3, 1024, 1024) and not seen[0][..., 683:, :].any()  # 64 x 96 -> 683 x 1024
    assert len(features) == 1 and features[0].shape == (1, 256, SIZE[0] // 16, SIZE[1] // 16)
    assert (features[0] > 0).all()  # the padding's zero cells were cropped away before resizing
