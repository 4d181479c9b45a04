import numpy as np
import pytest
import torch

from classes import CLASS_NAMES, OFFICIALS
from evaluate import (confusion_matrix, hungarian_match, majority_match, protocol, remap_confusion,
                      scored_frames, segmentation_scores)
from figures import mask_boundaries, markdown_table, plot_classwise_iou, plot_qualitative, results_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_counts_and_ignores_255():
    target = np.array([[0, 0, 1], [2, 255, 1]])
    pred = np.array([[0, 1, 1], [2, 0, 0]])
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), expected)
    from_torch = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 3)
    np.testing.assert_array_equal(from_torch, expected)
    assert from_torch.dtype == np.int64


def test_confusion_matrix_with_more_channels_than_classes():
    conf = confusion_matrix(np.array([0, 4, 4, 3]), np.array([0, 1, 1, 2]), 3, num_predicted=5)
    assert conf.shape == (3, 5)
    assert conf[1, 4] == 2 and conf[2, 3] == 1 and conf.sum() == 4


def test_confusion_matrix_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="num_predicted"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
    with pytest.raises(ValueError, match="target ids"):
        confusion_matrix(np.array([0]), np.array([7]), 3)


def test_scores_match_hand_computation_with_absent_class():
    # Class 2 is absent from the ground truth but predicted on one pixel of class 0.
    conf = np.array([[6, 1, 1], [2, 10, 0], [0, 0, 0]])
    scores = segmentation_scores(conf)
    iou_0 = 6 / (8 + 8 - 6)
    iou_1 = 10 / (12 + 11 - 10)
    np.testing.assert_allclose(scores["iou"][:2], [iou_0, iou_1])
    assert np.isnan(scores["iou"][2])
    assert scores["miou"] == pytest.approx((iou_0 + iou_1) / 2)
    assert scores["fwiou"] == pytest.approx(8 / 20 * iou_0 + 12 / 20 * iou_1)
    assert scores["pixel_accuracy"] == pytest.approx(16 / 20)


def test_scores_perfect_prediction_and_bad_input():
    scores = segmentation_scores(np.diag([3, 5, 2]))
    assert scores["miou"] == 1.0 and scores["fwiou"] == pytest.approx(1.0) and scores["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="square"):
        segmentation_scores(np.ones((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        segmentation_scores(np.zeros((2, 2)))


def test_hungarian_recovers_a_permutation_exactly():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 11, size=(40, 50))
    permutation = rng.permutation(11)  # class c is predicted as channel permutation[c]
    pred = permutation[target]
    noisy = pred.copy()
    noisy[::7, ::5] = rng.integers(0, 11, size=noisy[::7, ::5].shape)
    mapping = hungarian_match(confusion_matrix(noisy, target, 11))
    np.testing.assert_array_equal(mapping[permutation], np.arange(11))
    np.testing.assert_array_equal(mapping[pred], target)
    scores = segmentation_scores(remap_confusion(confusion_matrix(pred, target, 11), mapping))
    assert scores["miou"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="majority_match"):
        hungarian_match(np.ones((3, 4)))


def test_majority_match_with_more_channels_than_classes():
    # Channels 0 and 3 both mostly cover class 1; channel 2 covers class 0; channel 1 covers class 2.
    conf = np.array([[1, 0, 9, 0], [8, 1, 0, 5], [0, 7, 1, 1]])
    mapping = majority_match(conf)
    np.testing.assert_array_equal(mapping, [1, 2, 0, 1])
    named = remap_confusion(conf, mapping)
    np.testing.assert_array_equal(named, [[9, 1, 0], [0, 13, 1], [1, 1, 7]])
    assert named.sum() == conf.sum()


def test_remap_confusion_rejects_wrong_mapping_length():
    with pytest.raises(ValueError, match="one class per channel"):
        remap_confusion(np.ones((3, 4)), np.array([0, 1, 2]))


def test_figures_are_written_as_png(tmp_path):
    iou = np.array([0.9, np.nan, 0.5])
    bar_path = tmp_path / "figures" / "iou.png"
    plot_classwise_iou(iou, ["a", "b", "c"], bar_path)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    segments = np.zeros((16, 24), np.int64)
    segments[4:8, 6:12] = 1
    rows = [{"input": np.zeros((16, 24, 3), np.uint8),
             "teacher's masks": mask_boundaries(torch.rand(3, 16, 24), segments),
             "prediction": np.ones((16, 24), np.int64), "ground truth": np.full((16, 24), 255)}] * 2
    grid_path = tmp_path / "qualitative.png"
    plot_qualitative(rows, grid_path, palette, titles=["one", "two"], class_names={0: "a", 1: "b", 2: "c"},
                     footnote="one line under the figure")
    for path in (bar_path, grid_path):
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    with pytest.raises(ValueError, match="every row with the same panels"):
        plot_qualitative([rows[0], {"input": rows[0]["input"]}], tmp_path / "bad.png", palette)


def test_mask_boundaries_are_drawn_where_segments_meet():
    segments = np.zeros((8, 8), np.int64)
    segments[:, 4:] = 1
    drawn = mask_boundaries(np.zeros((8, 8, 3), np.uint8), segments)
    # A one-pixel line, yellow blended over the (black) frame, on the left side of the change.
    line = (drawn != 0).any(axis=2)
    assert line[:, 3].all() and not line[:, :3].any() and not line[:, 4:].any()
    assert (drawn[0, 3] == (153, 153, 0)).all()


def test_markdown_table():
    table = markdown_table([("ours", 91.234, "-")], ["method", "mIoU", "FWIoU"])
    assert table.splitlines() == ["| method | mIoU | FWIoU |", "|---|---|---|", "| ours | 91.23 | - |"]


def test_the_legend_names_every_id_painted_and_only_those(tmp_path, monkeypatch):
    import figures
    shown = []
    real_legend = figures.Figure.legend

    def spy(self, *args, handles, **kwargs):
        shown.extend(handle.get_label() for handle in handles)
        return real_legend(self, *args, handles=handles, **kwargs)

    monkeypatch.setattr(figures.Figure, "legend", spy)
    label = np.zeros((16, 24), np.int64)
    label[:4], label[-2:] = 5, 255  # a cluster named "officials", and unlabelled pixels
    rows = [{"input": np.zeros((16, 24, 3), np.uint8), "student": label,
             "ground truth": np.full((16, 24), 2)}]
    plot_qualitative(rows, tmp_path / "q.png", figures.DISPLAY_PALETTE,
                     class_names={0: "a", 1: "b", 2: "c", 5: "officials (not in the labels)"})
    assert shown == ["a", "c", "officials (not in the labels)", "unlabelled"]
    # Every colour drawn is one a reader can see: no class is drawn black, nor white (unlabelled).
    colours = {tuple(c) for c in figures.DISPLAY_PALETTE.tolist()}
    assert len(colours) == 11 and not colours & {(0, 0, 0), (255, 255, 255)}


def test_a_long_title_is_wrapped_inside_the_figure(tmp_path, monkeypatch):
    import figures
    drawn = []
    real_save = figures._save

    def save(figure, path):
        drawn.append(figure)
        real_save(figure, path)

    monkeypatch.setattr(figures, "_save", save)
    title = ("SoccerSAM (ours, label-free), superpixel masks\nclass-wise IoU, fssod-second-match, 16 "
             "labelled frames spread over the match (--max-frames 16), 2-fold cross-validation\nmIoU 7.77: "
             "the mean over the 10 classes present")
    plot_classwise_iou(np.full(11, 0.5), [f"class {i}" for i in range(11)], tmp_path / "iou.png", title=title)
    figure = drawn[0]
    renderer = figure.canvas.get_renderer()
    box, inside = figure._suptitle.get_window_extent(renderer), figure.bbox
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and box.y1 <= inside.y1
    assert "2-fold" in figure._suptitle.get_text()


def _results(data: str, iou_officials, **extra) -> dict:
    iou = {name: 50.0 for name in CLASS_NAMES}
    iou["Coaches & Officials"] = iou_officials
    scores = {"miou": 20.13, "fwiou": 40.0, "iou": iou}
    return {"method": "SoccerSAM (ours, label-free)", "masks": "superpixel masks",
            "mask_source": "superpixel", "data": data, "lambdas": {"sbm": 0.3, "bd": 1.0, "aug": 0.4},
            "strict": scores, "pseudo_labels": {"miou": 18.15, "fwiou": 43.4, "iou": iou}, **extra}


def test_the_protocol_says_over_which_classes_the_mean_is():
    synthetic = {"data": "synthetic", "fold": None, "folds": 1, "supervised": False}
    fssod = {"data": "../shared/fssod", "fold": 0, "folds": 2, "supervised": False}
    every, no_officials = [True] * 11, [c != OFFICIALS for c in range(11)]
    assert protocol(11, synthetic, False, every) == ("strict: clusters named by Hungarian matching on the "
                                                     "training frames; mIoU over the 11 classes present")
    said = protocol(11, fssod, False, no_officials)
    assert said.startswith("2-fold cross-validation, contiguous blocks") and "all labelled frames" not in said
    assert said.endswith("black pixels ignored (annotation gaps): mIoU over the 10 classes present, "
                         "Coaches & Officials absent")
    assert "counted as class 5" in protocol(11, fssod, True, every)


def test_tables_add_the_pseudo_labels_and_say_the_frames_once():
    results = _results("synthetic", 50.0, evaluated_on=scored_frames({"data": "synthetic"}),
                       protocol="strict: clusters named by Hungarian matching on the training frames")
    text = results_tables(results, results["evaluated_on"])
    assert text.count("synthetic test scenes") == 1 and "synthetic scenes, the test scenes" not in text
    assert "| the SBM's pseudo-labels it learnt from, superpixel masks | 18.15 | 43.40 |" in text
    fssod = results_tables(_results("../shared/fssod", None, protocol="p"), "fssod, all 90 labelled frames")
    table_1 = fssod.split("Table 2")[0]
    assert "| SoccerSAM (ours, label-free), superpixel masks | 20.13 | 40.00 |" in table_1
    assert "| the SBM's pseudo-labels it learnt from, superpixel masks | 18.15 | 43.40 |" in table_1
