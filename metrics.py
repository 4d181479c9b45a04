"""The paper's scores and how label-free clusters are named (paper Sec. 3; SPEC point 2).

The paper reports mean intersection over union (mIoU) and frequency-weighted IoU (FWIoU) on FSSOD.
Both come from one confusion matrix: rows are the true classes, columns the predicted channels.
IoU of a class is its diagonal entry over (row sum + column sum - diagonal); a class absent from the
ground truth of the evaluated frames has no IoU (nan) and is left out of the mean; FWIoU weights
each class's IoU by its share of the labelled pixels.

A label-free student's K output channels are clusters that must be named before they can be scored:
Hungarian matching (K = 11, one channel per class) or each channel's majority class (K > 11), fitted
on a confusion matrix and then applied as a fixed channel -> class mapping. evaluate.py decides on
which frames the naming is fitted (the strict protocol: the frames the run trained on).
"""
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from classes import CLASS_NAMES, IGNORE_INDEX


def _as_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def confusion_matrix(pred, target, num_classes: int, num_predicted: int | None = None) -> np.ndarray:
    """Count pixels by (true class, predicted channel).

    pred: (...) int predicted channels in 0..num_predicted-1; target: (...) int class ids in
    0..num_classes-1 or IGNORE_INDEX (255, not counted). numpy arrays or torch tensors.
    Returns (num_classes, num_predicted) int64; num_predicted defaults to num_classes.
    """
    num_predicted = num_classes if num_predicted is None else num_predicted
    pred, target = _as_numpy(pred).astype(np.int64).ravel(), _as_numpy(target).astype(np.int64).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels but target has {target.size}; "
                         "pass maps of the same shape")
    valid = target != IGNORE_INDEX
    pred, target = pred[valid], target[valid]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target ids must lie in 0..{num_classes - 1} or be {IGNORE_INDEX}; got "
                         f"{target.min()}..{target.max()}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_predicted):
        raise ValueError(f"predicted channels must lie in 0..{num_predicted - 1}; got "
                         f"{pred.min()}..{pred.max()}; pass num_predicted")
    counts = np.bincount(target * num_predicted + pred, minlength=num_classes * num_predicted)
    return counts.reshape(num_classes, num_predicted)


def segmentation_scores(conf: np.ndarray) -> dict:
    """Scores of a square confusion matrix, as fractions in [0, 1].

    conf: (C, C), rows true class, columns predicted class. Returns iou: (C,) float with nan for
    classes absent from the ground truth; miou: mean IoU over the classes present; fwiou: sum over
    present classes of (pixel share of class c) * IoU_c; pixel_accuracy: diagonal / total.
    """
    conf = np.asarray(conf, dtype=np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"segmentation_scores needs a square confusion matrix, got {conf.shape}; name the "
                         "channels first (remap_confusion)")
    total = conf.sum()
    if total == 0:
        raise ValueError("the confusion matrix is empty: no labelled pixel was counted; check the targets")
    true_pixels, predicted_pixels, hits = conf.sum(axis=1), conf.sum(axis=0), np.diag(conf)
    present = true_pixels > 0
    iou = np.full(conf.shape[0], np.nan)
    iou[present] = hits[present] / (true_pixels + predicted_pixels - hits)[present]
    frequency = true_pixels / total
    return {
        "iou": iou,
        "miou": float(np.mean(iou[present])),
        "fwiou": float(np.sum(frequency[present] * iou[present])),
        "pixel_accuracy": float(hits.sum() / total),
    }


def hungarian_match(conf: np.ndarray) -> np.ndarray:
    """One-to-one naming of K = C channels maximising the matched pixels.

    conf: (C, K) confusion matrix with K == C. Returns mapping: (K,) int64, channel -> class id.
    """
    conf = np.asarray(conf)
    if conf.shape[0] != conf.shape[1]:
        raise ValueError(f"Hungarian matching needs as many channels as classes, got {conf.shape}; use "
                         "majority_match for K > C")
    channels, classes = linear_sum_assignment(conf.T, maximize=True)
    mapping = np.empty(conf.shape[1], dtype=np.int64)
    mapping[channels] = classes
    return mapping


def majority_match(conf: np.ndarray) -> np.ndarray:
    """Name each channel by its majority class (the K >= C protocol; several channels may share a class).

    conf: (C, K). Returns mapping: (K,) int64, channel -> class id; an empty channel gets class 0,
    which never matters because no pixel carries it.
    """
    return np.asarray(conf).argmax(axis=0).astype(np.int64)


def apply_mapping(pred, mapping):
    """Relabel predicted channels as classes. pred: (...) int channels, numpy or torch -> same type."""
    if isinstance(pred, torch.Tensor):
        return torch.as_tensor(np.asarray(mapping), dtype=torch.long, device=pred.device)[pred.long()]
    return np.asarray(mapping, dtype=np.int64)[np.asarray(pred)]


def remap_confusion(conf: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Confusion matrix of the named prediction: columns summed by mapping. conf: (C, K) -> (C, C)."""
    conf = np.asarray(conf)
    mapping = np.asarray(mapping, dtype=np.int64)
    if mapping.shape != (conf.shape[1],):
        raise ValueError(f"mapping has shape {mapping.shape} but the confusion matrix has {conf.shape[1]} "
                         "channels; pass one class per channel")
    named = np.zeros((conf.shape[0], conf.shape[0]), dtype=conf.dtype)
    np.add.at(named.T, mapping, conf.T)
    return named


def name_channels(conf: np.ndarray, supervised: bool) -> np.ndarray:
    """Output channel -> class: the identity for the supervised baseline, else Hungarian matching
    (K = 11) or majority naming (K > 11) on `conf` (SPEC point 2)."""
    if supervised:
        return np.arange(conf.shape[1])
    return hungarian_match(conf) if conf.shape[1] == conf.shape[0] else majority_match(conf)


def scores_in_percent(named_conf: np.ndarray) -> dict:
    """mIoU, FWIoU, pixel accuracy and per-class IoU in %, of a named (C, C) confusion matrix."""
    scores = segmentation_scores(named_conf)
    return {"miou": 100 * scores["miou"], "fwiou": 100 * scores["fwiou"],
            "pixel_accuracy": 100 * scores["pixel_accuracy"],
            "iou": {name: None if np.isnan(v) else 100 * float(v)
                    for name, v in zip(CLASS_NAMES, scores["iou"])}}
