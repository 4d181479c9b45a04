import json

import numpy as np
import pytest
import torch
from PIL import Image

import classes
import data
from classes import CLASSES, CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, OFFICIALS, PALETTE
from data import FSSOD, colorize, decode_mask, fold_of_frames
from stand_ins.synthetic import SyntheticScenes, make_scene


def test_class_table_matches_classes_json(fssod_root):
    listed = json.loads((fssod_root / "classes.json").read_text())["classes"]
    assert [(c["id"], c["name"], tuple(c["rgb"])) for c in listed] == [(c.id, c.name, c.rgb) for c in CLASSES]
    assert NUM_CLASSES == 11 and CLASS_NAMES[9] == "Team A" and PALETTE.shape == (11, 3)


def test_decode_mask_exact_colours_and_colorize_round_trip():
    ids = np.arange(11).reshape(1, 11).repeat(2, axis=0)
    np.testing.assert_array_equal(decode_mask(colorize(ids), black_is_class=True), ids)
    # Black, the colour of "Coaches & Officials", marks annotation gaps: unlabelled by default.
    np.testing.assert_array_equal(decode_mask(colorize(ids)), np.where(ids == OFFICIALS, IGNORE_INDEX, ids))
    # Team A (254, 233, 3) and Goalkeeper A (255, 235, 0) must not be confused.
    assert decode_mask(np.array([[[254, 233, 3], [255, 235, 0]]], np.uint8)).tolist() == [[9, 7]]
    with pytest.raises(ValueError, match=r"mask.png.*\(254, 234, 3\)"):
        decode_mask(np.array([[[254, 234, 3]]], np.uint8), "mask.png")
    assert colorize(np.array([[255]])).tolist() == [[[255, 255, 255]]]


def test_fssod_splits_and_shapes(fssod_root):
    train = FSSOD(fssod_root, "train")
    test = FSSOD(fssod_root / "images", "test", labels=True)
    assert len(train) == 80 and len(test) == 10
    assert test.names[0] == "Frame 1  (1).jpg" and test.names[-1] == "Frame 1  (10).jpg"
    assert not set(train.names) & set(test.names)
    item = test[0]
    assert item["image"].shape == (3, 416, 608) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["label"].shape == (416, 608) and item["label"].dtype == torch.int64
    assert 0 <= item["label"].min() and item["label"].max() <= 10
    assert len(item["label"].unique()) >= 3
    small = FSSOD(fssod_root, "train", size=(64, 96), labels=True)[5]
    assert small["image"].shape == (3, 64, 96) and small["label"].shape == (64, 96)
    assert "label" not in train[0]


def spy_on_image_open(monkeypatch) -> list[str]:
    """The paths PIL opens from now on, in order."""
    opened = []
    real_open = Image.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    return opened


def test_no_mask_is_opened_without_labels(fssod_root, monkeypatch):
    opened = spy_on_image_open(monkeypatch)
    dataset = FSSOD(fssod_root, "train", size=(32, 48), labels=False)
    for index in range(len(dataset)):
        dataset[index]
    assert len(opened) == 80
    assert not [path for path in opened if "___fuse" in path]


def _frame_folder(tmp_path, numbers, with_masks=True):
    folder = tmp_path / "images"
    folder.mkdir()
    for number in numbers:
        name = f"Frame 1  ({number}).jpg"
        Image.fromarray(np.full((12, 20, 3), 90, np.uint8)).save(folder / name)
        if with_masks:
            mask = np.zeros((12, 20, 4), np.uint8)
            mask[..., :3] = PALETTE[3]
            mask[:4, ..., :3] = PALETTE[6]
            mask[..., 3] = 255
            Image.fromarray(mask, "RGBA").save(folder / (name + "___fuse.png"))
    return folder


def test_default_split_without_split_file_and_extra_files(tmp_path):
    folder = _frame_folder(tmp_path, [1, 2, 10, 11, 12])
    (folder / "Frame 1  (11).jpg___save.png").write_bytes(b"ignored")
    (folder / "other").mkdir()
    assert FSSOD(tmp_path, "test").names == ["Frame 1  (1).jpg", "Frame 1  (2).jpg", "Frame 1  (10).jpg"]
    assert FSSOD(folder, "train").names == ["Frame 1  (11).jpg", "Frame 1  (12).jpg"]
    assert len(FSSOD(folder, "all")) == 5
    label = FSSOD(folder, "train", size=(6, 10), labels=True)[0]["label"]
    assert label[:2].eq(6).all() and label[2:].eq(3).all()


def test_a_few_black_border_pixels_do_not_create_a_class(tmp_path):
    folder = _frame_folder(tmp_path, [11])
    mask = np.asarray(Image.open(folder / "Frame 1  (11).jpg___fuse.png")).copy()
    mask[-1, :5, :3] = 0  # the annotation gap FSSOD's masks have in their bottom rows
    Image.fromarray(mask, "RGBA").save(folder / "Frame 1  (11).jpg___fuse.png")
    label = FSSOD(folder, "train", size=(12, 20), labels=True)[0]["label"]
    assert (label[-1, :5] == IGNORE_INDEX).all() and not (label == OFFICIALS).any()
    counted = FSSOD(folder, "train", size=(12, 20), labels=True, black_is_class=True)[0]["label"]
    assert (counted[-1, :5] == OFFICIALS).all()
    from evaluate import confusion_matrix, segmentation_scores
    scores = segmentation_scores(confusion_matrix(label, label, NUM_CLASSES))
    assert np.isnan(scores["iou"][OFFICIALS]) and scores["miou"] == 1.0


def test_folds_are_contiguous_blocks_and_test_every_frame_once(tmp_path):
    names = [f"Frame 1  ({n}).jpg" for n in (12, 3, 7, 1, 20, 9, 15, 4, 30, 2)]
    fold = fold_of_frames(names, 5)
    by_number = sorted(zip(names, fold), key=lambda nf: int(nf[0].split("(")[1].split(")")[0]))
    assert [f for _, f in by_number] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert fold_of_frames(list(reversed(names)), 5) == list(reversed(fold))
    with pytest.raises(ValueError, match="--folds 11"):
        fold_of_frames(names, 11)

    folder = _frame_folder(tmp_path, [1, 2, 3, 5, 8, 13, 21])
    tested = []
    for f in range(3):
        train, test = FSSOD(folder, "train", fold=f, folds=3), FSSOD(folder, "test", fold=f, folds=3)
        assert not set(train.names) & set(test.names) and len(train) + len(test) == 7
        tested += test.names
    assert sorted(tested) == sorted(FSSOD(folder, "all").names)
    with pytest.raises(ValueError, match="--fold 3"):
        FSSOD(folder, "test", fold=3, folds=3)


def test_fssod_folds_of_the_real_frames(fssod_root):
    sizes = [len(FSSOD(fssod_root, "test", fold=f)) for f in range(5)]
    assert sizes == [18] * 5
    assert FSSOD(fssod_root, "test", fold=0).names[:2] == ["Frame 1  (1).jpg", "Frame 1  (2).jpg"]


def test_a_folder_without_masks_is_unlabelled_frames(tmp_path):
    folder = _frame_folder(tmp_path, [1, 2, 3], with_masks=False)
    frames = FSSOD(folder, "all")
    assert not frames.has_masks and len(frames) == 3
    (tmp_path / "labelled").mkdir()
    assert FSSOD(_frame_folder(tmp_path / "labelled", [1]), "all").has_masks


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: download .* pass --data"):
        FSSOD(tmp_path / "nowhere")


def test_frame_without_mask(tmp_path):
    folder = _frame_folder(tmp_path, [11, 12])
    (folder / "Frame 1  (12).jpg___fuse.png").unlink()
    assert len(FSSOD(folder, "train")) == 2
    with pytest.raises(FileNotFoundError, match=r"\(12\)\.jpg: no mask"):
        FSSOD(folder, "train", labels=True)


def test_unreadable_image(tmp_path):
    folder = _frame_folder(tmp_path, [11])
    (folder / "Frame 1  (11).jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"\(11\)\.jpg: cannot read"):
        FSSOD(folder, "train")[0]


def test_unknown_mask_colour(tmp_path):
    folder = _frame_folder(tmp_path, [11])
    mask = np.zeros((12, 20, 3), np.uint8)
    mask[:] = (1, 2, 3)
    Image.fromarray(mask).save(folder / "Frame 1  (11).jpg___fuse.png")
    with pytest.raises(ValueError, match=r"___fuse\.png: 1 mask colour.*\(1, 2, 3\)"):
        FSSOD(folder, "train", labels=True)[0]


def test_a_folder_of_non_images_is_one_line_naming_the_file(tmp_path):
    from engineering.files import report_user_errors
    folder = tmp_path / "not-images"
    folder.mkdir()
    for number in (1, 2):
        (folder / f"Frame 1  ({number}).jpg").write_text("hello")
    frames = FSSOD(folder, "all")
    for check in (lambda: frames.native_size, frames.check_frames):
        with pytest.raises(ValueError, match=r"Frame 1  \(1\)\.jpg: cannot read this image"):
            check()
        with pytest.raises(SystemExit) as stopped:
            report_user_errors(check)
        assert stopped.value.code.startswith("error: ") and "\n" not in stopped.value.code


def test_check_frames_names_a_truncated_frame_and_reads_no_mask(tmp_path, monkeypatch):
    folder = _frame_folder(tmp_path, [1, 2, 3])
    noise = np.random.default_rng(0).integers(0, 255, (120, 200, 3), np.uint8)
    Image.fromarray(noise).save(folder / "Frame 1  (2).jpg")
    FSSOD(folder, "all").check_frames()
    whole = (folder / "Frame 1  (2).jpg").read_bytes()
    (folder / "Frame 1  (2).jpg").write_bytes(whole[:len(whole) // 2])  # its header intact, half its pixels
    opened = spy_on_image_open(monkeypatch)
    with pytest.raises(ValueError, match=r"Frame 1  \(2\)\.jpg: cannot read this image \(.*[Tt]runcated"):
        FSSOD(folder, "all").check_frames()
    assert opened and not [path for path in opened if "___fuse" in path]


def test_an_unknown_mask_colour_is_caught_before_training(tmp_path):
    from evaluate import check_labelled_frames
    folder = _frame_folder(tmp_path, [1, 2, 3])
    check_labelled_frames(str(folder))
    check_labelled_frames("synthetic")
    mask = np.asarray(Image.open(folder / "Frame 1  (3).jpg___fuse.png")).copy()
    mask[5, 7, :3] = (1, 2, 3)
    Image.fromarray(mask, "RGBA").save(folder / "Frame 1  (3).jpg___fuse.png")
    with pytest.raises(ValueError, match=r"\(3\)\.jpg___fuse\.png: 1 mask colour.*\(1, 2, 3\)"):
        check_labelled_frames(str(folder))
    # --max-frames 2 chooses frames 1 and 2: evaluation would never read the third mask.
    check_labelled_frames(str(folder), max_frames=2)
    # Frames without masks are unlabelled footage: evaluation reads nothing.
    for number in (1, 2, 3):
        (folder / f"Frame 1  ({number}).jpg___fuse.png").unlink()
    check_labelled_frames(str(folder))


def test_split_file_naming_a_missing_frame(tmp_path):
    _frame_folder(tmp_path, [1, 11])
    (tmp_path / "split.json").write_text(json.dumps({"train": ["Frame 1  (11).jpg", "Frame 1  (99).jpg"],
                                                     "test": ["Frame 1  (1).jpg"]}))
    assert FSSOD(tmp_path, "test").names == ["Frame 1  (1).jpg"]
    with pytest.raises(FileNotFoundError, match=r"split\.json names 1 frame.*\(99\)"):
        FSSOD(tmp_path, "train")


def test_make_scene_is_deterministic_and_typed():
    image, label = make_scene(3)
    again_image, again_label = make_scene(3)
    other_image, other_label = make_scene(4)
    assert image.shape == (416, 608, 3) and image.dtype == np.uint8
    assert label.shape == (416, 608) and label.dtype == np.int64
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(label, again_label)
    assert not np.array_equal(image, other_image) and not np.array_equal(label, other_label)
    small_image, small_label = make_scene(3, (64, 96))
    assert small_image.shape == (64, 96, 3) and small_label.shape == (64, 96)


def test_make_scene_labels_match_what_was_drawn():
    seen = set()
    for seed in range(10):
        image, label = make_scene(seed)
        seen |= set(np.unique(label).tolist())
        pixels = image.astype(np.int64)
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        assert (pixels[label == classes.BALL].min(axis=-1) >= 230).all()
        ground = label == classes.GROUND
        grass = (green > red + 20) & (green > blue + 20)
        line = pixels.min(axis=-1) >= 225
        assert (grass | line)[ground].all()
        # The audience is above the boards.
        rows = np.arange(label.shape[0])
        assert (rows[(label == classes.AUDIENCE).any(axis=1)].max()
                < rows[(label == classes.ADVERTISEMENT).any(axis=1)].min())
    assert seen == set(range(11))


def test_synthetic_scenes_items():
    dataset = SyntheticScenes(3, size=(64, 96), seed=2, labels=True)
    item = dataset[1]
    assert dataset.names == ["synthetic_s2_0000.png", "synthetic_s2_0001.png", "synthetic_s2_0002.png"]
    assert item["image"].shape == (3, 64, 96) and item["image"].dtype == torch.float32
    image, label = make_scene(2 * 100003 + 1, (64, 96))
    assert torch.equal(item["label"], torch.from_numpy(label))
    assert torch.allclose(item["image"], torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert "label" not in SyntheticScenes(1, size=(64, 96))[0]
