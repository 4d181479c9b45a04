"""Evaluation: confusion matrices, mIoU / FWIoU, naming of clusters, cross-validation, Figures 2-3,
Tables 1-2 (paper Sec. 3).

The paper reports mean intersection over union (mIoU) and frequency-weighted IoU (FWIoU) on FSSOD.
Both come from one confusion matrix: rows are the true classes, columns the predicted channels.
IoU of a class is its diagonal entry over (row sum + column sum - diagonal); a class absent from the
ground truth of the evaluated frames has no IoU (nan) and is left out of the mean; FWIoU weights
each class's IoU by its share of the labelled pixels. FSSOD's black pixels are unlabelled (data.py),
so "Coaches & Officials" never occurs and scores are over the 10 classes that do.

Our method is trained without labels (SPEC point 2), so its K output channels are clusters that
must be named before they can be scored. Strict protocol: Hungarian matching (K = 11) on the
confusion matrix of the frames the run *trained* on fixes one channel -> class mapping, which is then
applied unchanged to its test frames. Per-split protocol, the usual one in unsupervised segmentation
and reported beside it, labelled as such: the matching is fitted on the test frames themselves. With
more clusters than classes (K > 11), each channel is named by its majority class on the training frames.

The headline is a 5-fold cross-validation (data.fold_of_frames): each fold's run trains on four fifths
of the frames, is named on them and scored on the last fifth; `pool_folds` sums the five named test
confusion matrices into one, so every labelled frame counts exactly once, and reports the spread over
folds beside it.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.optimize import linear_sum_assignment
from torch.utils.data import DataLoader

from data import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, open_dataset
from sam_teacher import report_user_errors, write_atomically

# Figures draw classes in colours a person can tell apart; the dataset's own palette gives Team A and
# Goalkeeper A (and Team B and Goalkeeper B) colours a few units apart.
DISPLAY_PALETTE = np.array([(230, 25, 75), (250, 190, 212), (0, 130, 200), (60, 180, 75), (240, 50, 230),
                            (0, 0, 0), (145, 30, 180), (255, 225, 25), (245, 130, 48), (70, 240, 240),
                            (128, 0, 0)], dtype=np.uint8)
SMALL_CLASSES = (1, 4, 7, 8)  # referee, ball, goalkeepers: where label-free methods fail
PAPER_TABLE_1 = [("FCN", 77.84, 92.26), ("PSPNet", 58.46, 83.96), ("SegNet", 69.7, 90.51),
                 ("VGG-UNet", 83.64, 95.02), ("MobileNet-UNet (supervised)", 84.28, 95.36),
                 ("SoccerSAM", 92.33, 97.2)]
PAPER_TABLE_2 = [("SoccerSAM w/o L_sbm", 88.37, 93.54), ("SoccerSAM w/o L_bd", 87.42, 94.8),
                 ("SoccerSAM w/o L_aug", 89.2, 95.4), ("SoccerSAM", 92.33, 97.2)]


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


# ----------------------------------------------------------------------------------------------
# Figures 2 and 3, and the tables.

def _save(figure: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def plot_classwise_iou(iou: np.ndarray, class_names: list[str], path: str | Path,
                       title: str = "Class-wise IoU") -> None:
    """Figure 2: horizontal bar chart of per-class IoU (fractions, shown in %); nan classes marked n/a."""
    iou = np.asarray(iou, dtype=np.float64)
    figure = Figure(figsize=(7, 0.4 * len(class_names) + 1.4))
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    axes.barh(positions, np.nan_to_num(iou * 100), color="tab:blue")
    for position, value in zip(positions, iou):
        axes.text(0.5 if np.isnan(value) else value * 100 + 0.5, position,
                  "n/a (absent)" if np.isnan(value) else f"{value * 100:.1f}", va="center", fontsize=8)
    axes.set_yticks(positions, class_names)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("IoU (%)")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def _as_rgb(image) -> np.ndarray:
    """(3, H, W) float in [0, 1] or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    image = _as_numpy(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return image


def _paint(label, palette: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 in palette; ids outside the palette (e.g. 255) -> white."""
    label = _as_numpy(label).astype(np.int64)
    out = np.full(label.shape + (3,), 255, dtype=np.uint8)
    known = (label >= 0) & (label < len(palette))
    out[known] = np.asarray(palette, dtype=np.uint8)[label[known]]
    return out


def plot_qualitative(images, labels, preds, path: str | Path, palette: np.ndarray,
                     titles: list[str] | None = None, class_names: list[str] | None = None,
                     heading: str | None = None) -> None:
    """Figure 3: one row per frame, input | ground truth | prediction (input | prediction when labels
    is None).

    images: sequence of (3, H, W) float in [0, 1] or (H, W, 3) uint8; labels, preds: sequences of
    (H, W) ids (predictions already named); palette: (C, 3) uint8, white = unlabelled. titles name the
    rows; class_names adds a legend of the palette; heading goes above the grid.
    """
    rows = len(images)
    if rows == 0 or len(preds) != rows or (labels is not None and len(labels) != rows):
        raise ValueError(f"got {len(images)} images, {len(preds)} predictions and "
                         f"{'no' if labels is None else len(labels)} labels; pass the same non-zero number "
                         "of each")
    columns = ("input", "prediction") if labels is None else ("input", "ground truth", "prediction")
    height, width = _as_rgb(images[0]).shape[:2]
    legend_rows = 0 if not class_names else -(-(len(class_names) + 1) // 6)
    figure = Figure(figsize=(len(columns) * 2 * width / height + 0.5, 2 * rows + 0.3 * legend_rows + 0.6))
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        panels = [_as_rgb(images[row])] + ([] if labels is None else [_paint(labels[row], palette)])
        panels.append(_paint(preds[row], palette))
        for column, (panel, name) in enumerate(zip(panels, columns)):
            axes[row, column].imshow(panel, interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if row == 0:
                axes[row, column].set_title(name)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
    if heading:
        figure.suptitle(heading, fontsize=9)
    bottom = 0.0
    if class_names:
        handles = [Patch(facecolor=np.asarray(colour) / 255, edgecolor="grey", label=name)
                   for colour, name in zip(palette, class_names)]
        handles.append(Patch(facecolor="white", edgecolor="grey", label="unlabelled"))
        figure.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
        bottom = 0.3 * legend_rows / figure.get_figheight()
    figure.tight_layout(rect=(0, bottom, 1, 0.97 if heading else 1))
    _save(figure, path)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """Tables 1-2: rows of dicts -> a Markdown table; floats with two decimals, missing cells empty."""

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, (float, np.floating)):
            return "n/a" if np.isnan(value) else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_run_outputs(results: dict, frames: list[tuple], out_dir: Path) -> None:
    """results.json, classwise_iou.png (Fig. 2), qualitative.png (Fig. 3) and tables.md of a scored run.
    frames: (image, label, named prediction, title) rows for Fig. 3 (none: no Fig. 3)."""
    write_atomically(out_dir / "results.json", json.dumps(results, indent=2).encode())
    where = f"{Path(results['data']).name}, {results['evaluated_on']}"  # the dataset, not this machine's path
    iou = np.array([np.nan if v is None else v for v in results["strict"]["iou"].values()]) / 100
    plot_classwise_iou(iou, CLASS_NAMES, out_dir / "classwise_iou.png",
                       title=f"{results['method']}, {results['masks']}\nclass-wise IoU, {where}")
    if frames:
        images, labels, preds, titles = zip(*frames)
        plot_qualitative(images, labels, preds, out_dir / "qualitative.png", DISPLAY_PALETTE,
                         titles=list(titles), class_names=CLASS_NAMES,
                         heading=f"{results['method']}: {where}")
    columns = ["method", "mIoU (%)", "FWIoU (%)"]

    def row(name: str, miou: float, fwiou: float) -> dict:
        return {"method": name, "mIoU (%)": f"{miou:.2f}", "FWIoU (%)": f"{fwiou:.2f}"}

    strict = results["strict"]
    dropped = [f"L_{n}" for n in ("sbm", "bd", "aug") if results["lambdas"][n] == 0]
    ours = row(f"{results['method']}{' w/o ' + ', '.join(dropped) if dropped else ''}, {results['masks']}",
               strict["miou"], strict["fwiou"])
    table_1 = [row(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_1] + [ours]
    table_2 = [row(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_2] + [ours]
    (out_dir / "tables.md").write_text(
        f"Table 1 ({where}; ours: {results['protocol']}):\n\n{markdown_table(table_1, columns)}\n"
        + ("" if results["mask_source"] is None
           else f"Table 2 (this run's row):\n\n{markdown_table(table_2, columns)}"))


# ----------------------------------------------------------------------------------------------
# A trained student, scored: what train.py runs at the end of each run (or fold), and what
# `python evaluate.py --checkpoint` runs on any saved checkpoint.

@torch.no_grad()
def predicted_confusion(predict, dataset, num_predicted: int, device: str) -> tuple[np.ndarray, list[tuple]]:
    """Confusion matrix (C, K) of the argmax channels of `predict(batch) -> logits (B, K, H, W)` over
    a labelled split, and for every frame (small-class pixels, name, image, label, predicted channels)."""
    conf = np.zeros((NUM_CLASSES, num_predicted), np.int64)
    frames = []
    for batch in DataLoader(dataset, batch_size=4):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            pred = predict(batch).argmax(1).cpu()
        conf += confusion_matrix(pred, batch["label"], NUM_CLASSES, num_predicted)
        for name, image, label, p in zip(batch["name"], batch["image"], batch["label"], pred):
            small = int(np.isin(label.numpy(), SMALL_CLASSES).sum())
            frames.append((small, name, image.permute(1, 2, 0).numpy(), label.numpy(), p.numpy()))
    return conf, frames


def run_splits(args: dict, black_is_class: bool = False, data: str | None = None):
    """The two labelled splits of a run (its train.py args): the frames it trained on, where its
    channels are named, and the frames it is scored on (its fold, or the single split's test frames)."""
    common = dict(size=tuple(args["size"]), labels=True, fold=args["fold"], folds=args["folds"],
                  max_frames=args["max_frames"], black_is_class=black_is_class)
    data = data or args["data"]
    return open_dataset(data, "train", **common), open_dataset(data, "test", **common)


def sbm_pseudo_label_confusions(state: dict, fit, evaluated, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrices (C, K) of the SBM's own segmentation, the argmax of y_hat (eqs. 1-2), on the
    training and the scored frames: what the student learns from. Masks missing from the run's cache
    (the scored frames) are added to it (the teacher sees only the image, except the oracle source)."""
    from sam_teacher import MaskCache, build_cache, make_teacher, missing_frames
    from train import build_sbm

    args, k = state["args"], state["args"]["clusters"]
    for frames in (fit, evaluated):
        if missing_frames(args["cache"], frames.names):
            teacher = make_teacher(args["source"], args["sam_checkpoint"], device)
            build_cache(frames, teacher, args["cache"], progress=False)
    cache = MaskCache(args["cache"], expected_settings={"source": args["source"], "image_size": args["size"]})
    sbm = build_sbm(k, args["sbm_backbone"], args["sam_checkpoint"])
    sbm.load_state_dict(state["sbm"])
    sbm.to(device).eval()

    def predict(batch: dict) -> torch.Tensor:
        masks = [cache.load(name).to(device) for name in batch["name"]]
        return sbm(batch["image"].to(device), masks)[0]

    return tuple(predicted_confusion(predict, frames, k, device)[0] for frames in (fit, evaluated))


def describe_run(args: dict) -> tuple[str, str]:
    """The method's name and its mask source, as every table and figure states them."""
    if args["supervised"]:
        student = "LRASPP-MobileNetV3" if args["student"] == "lraspp" else "MobileNet-UNet"
        return f"{student} (supervised, ours)", "ground-truth labels"
    masks = {"sam": "SAM masks", "boundary": "PiDiNet regions", "superpixel": "superpixel masks",
             "oracle": "ANALYSIS: oracle masks (from the labels)"}[args["source"]]
    if args["sbm_prior"]:
        return "SoccerSAM (ours) with a labelled SBM prior (ANALYSIS: uses labels)", masks
    return "SoccerSAM (ours, label-free)", masks


def evaluate_checkpoint(checkpoint: str | Path, out_dir: str | Path | None = None, device: str = "cpu",
                        black_is_class: bool = False, data: str | None = None, figures: bool = True) -> dict:
    """Scores a saved student on its run's test frames (strict and per-split protocols, and the SBM's
    pseudo-labels) and writes results.json into `out_dir`, with the figures and tables unless
    figures=False (a fold of a cross-validation: `pool_folds` draws them for the whole run)."""
    from student import trained_student

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found: pass the checkpoint.pt "
                                "of a train.py run folder")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    args, k = state["args"], state["args"]["clusters"]
    out_dir = Path(out_dir or checkpoint.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    student = trained_student(state, device)
    fit, evaluated = run_splits(args, black_is_class, data)

    conf_fit, _ = predicted_confusion(lambda b: student(b["image"].to(device)), fit, k, device)
    conf, frames = predicted_confusion(lambda b: student(b["image"].to(device)), evaluated, k, device)
    mapping = name_channels(conf_fit, args["supervised"])
    named = {"strict": remap_confusion(conf, mapping), "train_split": remap_confusion(conf_fit, mapping),
             "per_split": remap_confusion(conf, name_channels(conf, args["supervised"]))}
    if not args["supervised"]:
        pseudo_fit, pseudo = sbm_pseudo_label_confusions(state, fit, evaluated, device)
        pseudo_mapping = name_channels(pseudo_fit, supervised=False)
        named["pseudo_labels"] = remap_confusion(pseudo, pseudo_mapping)
        named["pseudo_labels_train"] = remap_confusion(pseudo_fit, pseudo_mapping)
    method, masks = describe_run(args)
    fold = args["fold"]
    results = {
        "method": method, "masks": masks, "mask_source": None if args["supervised"] else args["source"],
        "data": str(data or args["data"]), "size": list(args["size"]), "fold": fold, "folds": args["folds"],
        "evaluated_on": scored_frames(args),
        "test_frames": list(evaluated.names), "black_is_class": black_is_class,
        "student_weights": state["student_weights"], "sbm_weights": state["sbm_weights"],
        "protocol": protocol(k, args, black_is_class),
        "lambdas": {n: args[f"lambda_{n}"] for n in ("sbm", "bd", "aug")}, "seed": args["seed"],
        "epochs": state["epoch"] + 1, "clusters": k, "mapping": mapping.tolist(),
        **{key: scores_in_percent(c) for key, c in named.items()},
        "confusion": {key: c.tolist() for key, c in named.items()},
        "richest_frames": [(small, name) for small, name, *_ in sorted(frames, key=lambda f: -f[0])[:4]],
    }
    if figures:
        richest = sorted(frames, key=lambda f: -f[0])[:4]
        shown = [(image, label, mapping[p], name) for _, name, image, label, p in richest]
        write_run_outputs(results, shown, out_dir)
    else:
        write_atomically(out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results


def draw_predictions(checkpoint: str | Path, device: str = "cpu", count: int = 4) -> None:
    """For a run on unlabelled frames, where nothing can be scored: qualitative.png shows the first
    frames and the student's clusters (unnamed: naming needs labels)."""
    from matplotlib import colormaps

    from student import trained_student

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    args = state["args"]
    frames = open_dataset(args["data"], "all", tuple(args["size"]))
    student = trained_student(state, device)
    items = [frames[i] for i in range(min(count, len(frames)))]
    with torch.no_grad():
        preds = [student(item["image"][None].to(device))[0].argmax(0).cpu().numpy() for item in items]
    palette = (np.asarray(colormaps["tab20"](np.arange(args["clusters"]) % 20))[:, :3] * 255).astype(np.uint8)
    heading = f"{describe_run(args)[0]}: unlabelled frames of {args['data']}, predicted clusters"
    out = Path(checkpoint).parent / "qualitative.png"
    plot_qualitative([item["image"] for item in items], None, preds, out, palette,
                     titles=[item["name"] for item in items], heading=heading)


def scored_frames(args: dict) -> str:
    """Which frames a run (its train.py args) is scored on, in words."""
    if args["data"] == "synthetic":
        return "the synthetic test scenes"
    if args["fold"] is None:
        return "the single split's test frames"
    return f"fold {args['fold']} of {args['folds']}"


def protocol(clusters: int, args: dict, black_is_class: bool) -> str:
    """One sentence saying how a run (its train.py args) was scored."""
    if args["data"] == "synthetic":
        frames = "synthetic scenes, the test scenes drawn from other seeds than the training ones"
    elif args["fold"] is None:
        frames = "split.json's single split"
    else:
        frames = (f"{args['folds']}-fold cross-validation over all labelled frames (contiguous blocks by "
                  "frame number), the test folds' confusion matrices summed")
    if args["supervised"]:
        naming = "supervised: channels are the classes"
    elif clusters == NUM_CLASSES:
        naming = "strict: clusters named by Hungarian matching on the training frames"
    else:
        naming = f"majority: each of {clusters} clusters named by its majority class on the training frames"
    black = ("black pixels counted as class 5, Coaches & Officials (the old counting)" if black_is_class
             else "black pixels ignored, scored over the classes present")
    return f"{frames}; {naming}; {black}"


def pool_folds(run_dir: str | Path, device: str = "cpu") -> dict | None:
    """The cross-validated result of a run folder: the named confusion matrices of its folds
    (fold-F/results.json) summed, scored once, with the folds' own mIoU beside them; results.json,
    the figures and the tables are written into run_dir. None while a fold is missing."""
    from student import trained_student

    run_dir = Path(run_dir)
    found = sorted(run_dir.glob("fold-*/results.json"))
    if not found:
        return None
    folds = [json.loads(path.read_text()) for path in found]
    if sorted(f["fold"] for f in folds) != list(range(folds[0]["folds"])):
        return None
    pooled = {key: np.sum([np.asarray(f["confusion"][key]) for f in folds], axis=0)
              for key in folds[0]["confusion"]}
    fold_miou = [f["strict"]["miou"] for f in folds]
    keep = ("method", "masks", "mask_source", "data", "size", "folds", "black_is_class", "student_weights",
            "sbm_weights", "protocol", "lambdas", "seed", "epochs", "clusters")
    results = {key: folds[0][key] for key in keep}
    results.update({"evaluated_on": f"all {sum(len(f['test_frames']) for f in folds)} labelled frames, "
                                    f"{results['folds']}-fold cross-validation",
                    **{key: scores_in_percent(c) for key, c in pooled.items()},
                    "fold_miou": fold_miou, "fold_miou_mean": float(np.mean(fold_miou)),
                    "fold_miou_std": float(np.std(fold_miou, ddof=1)),
                    "confusion": {key: c.tolist() for key, c in pooled.items()}})
    # Figure 3 shows the four frames richest in small classes over all folds, each predicted by the
    # student of the fold that held it out (of the folds whose checkpoint is still there).
    kept = [f for f in folds if (run_dir / f"fold-{f['fold']}" / "checkpoint.pt").is_file()]
    richest = sorted(((small, name, f["fold"]) for f in kept for small, name in f["richest_frames"]),
                     reverse=True)[:4]
    shown = []
    for _, name, fold in richest:
        state = torch.load(run_dir / f"fold-{fold}" / "checkpoint.pt", map_location="cpu", weights_only=False)
        test = run_splits(state["args"], results["black_is_class"])[1]
        item = test[test.names.index(name)]
        mapping = np.asarray(folds[[f["fold"] for f in folds].index(fold)]["mapping"])
        with torch.no_grad():
            pred = trained_student(state, device)(item["image"][None].to(device))[0].argmax(0).cpu().numpy()
        shown.append((item["image"], item["label"], mapping[pred], f"{name} (fold {fold})"))
    write_run_outputs(results, shown, run_dir)
    return results


# ----------------------------------------------------------------------------------------------
# Tabulating finished runs: the rows of RESULTS.md.

def _mean_std(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def summarize_runs(paths: list[str | Path]) -> list[dict]:
    """Rows from runs' results.json files: runs named NAME-seedS are one row, mean and sample standard
    deviation over their seeds. Each row: name, seeds, folds, protocol, and as {"mean", "std"}: strict
    mIoU and FWIoU, per-split mIoU, train-split mIoU, the SBM pseudo-labels' mIoU (test and train
    frames), the folds' mIoU (`fold_miou`, the folds of every seed together) and every class's IoU
    (`iou`; the small classes also at the top level, for the table)."""
    groups: dict[str, list[dict]] = {}
    for path in sorted(map(Path, paths)):
        name = path.parent.name if path.name == "results.json" else path.stem
        groups.setdefault(name.split("-seed")[0], []).append(json.loads(path.read_text()))
    rows = []
    for name, runs in groups.items():
        first = runs[0]
        iou = {c: _mean_std([np.nan if r["strict"]["iou"][c] is None else r["strict"]["iou"][c]
                             for r in runs]) for c in CLASS_NAMES}
        rows.append({
            "name": name, "seeds": [r["seed"] for r in runs], "mask_source": first["mask_source"],
            "folds": first["folds"] if "fold_miou" in first else 1, "clusters": first["clusters"],
            "epochs": first["epochs"], "protocol": first["protocol"],
            "miou": _mean_std([r["strict"]["miou"] for r in runs]),
            "fwiou": _mean_std([r["strict"]["fwiou"] for r in runs]),
            "per_split_miou": _mean_std([r["per_split"]["miou"] for r in runs]),
            "train_miou": _mean_std([r["train_split"]["miou"] for r in runs]),
            "pseudo_label_miou": _mean_std([r.get("pseudo_labels", {}).get("miou", np.nan) for r in runs]),
            "pseudo_label_train_miou": _mean_std([r.get("pseudo_labels_train", {}).get("miou", np.nan)
                                                  for r in runs]),
            "fold_miou": _mean_std([m for r in runs for m in r.get("fold_miou", [np.nan])]),
            "iou": iou, **{CLASS_NAMES[c]: iou[CLASS_NAMES[c]] for c in SMALL_CLASSES},
        })
    return rows


def nan_as_null(value):
    """A summary with every NaN (the mean of a class absent from every run) as None: standard JSON's null."""
    if isinstance(value, dict):
        return {key: nan_as_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nan_as_null(item) for item in value]
    return None if isinstance(value, float) and np.isnan(value) else value


def summary_table(rows: list[dict]) -> str:
    """Markdown table of `summarize_runs` rows: mean ± std over seeds (over folds and seeds in the
    folds column). Rows with K > 11 clusters are named by majority (the secondary protocol)."""
    def cell(v: dict, n: int) -> str:
        return "-" if np.isnan(v["mean"]) else f"{v['mean']:.1f}" + (f" ± {v['std']:.1f}" if n > 1 else "")

    small = [CLASS_NAMES[c] for c in SMALL_CLASSES]
    keys = ["miou", "fwiou", "fold_miou", "per_split_miou", "train_miou", "pseudo_label_miou",
            "pseudo_label_train_miou", *small]
    columns = ["run", "masks", "K", "epochs", "folds", "seeds", "mIoU", "FWIoU", "mIoU per fold",
               "per-split mIoU", "train mIoU", "pseudo-labels mIoU", "pseudo-labels train mIoU", *small]
    lines = ["| " + " | ".join(columns) + " |", "|---|---|---:|---:|---:|---|" + "---:|" * (len(columns) - 6)]
    for r in rows:
        n = len(r["seeds"])
        sizes = {"fold_miou": n * r["folds"]}
        masks, seeds = r["mask_source"] or "labels (supervised)", " ".join(map(str, r["seeds"]))
        cells = [f"`{r['name']}`", masks, r["clusters"], r["epochs"], r["folds"], seeds]
        cells += [cell(r[k], sizes.get(k, n)) for k in keys]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Score a trained SoccerSAM student (metrics, figures, tables), "
                                            "or tabulate finished runs over their seeds with --summarize.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint",
                      help="RUN/checkpoint.pt (or RUN/fold-F/checkpoint.pt) written by train.py")
    what.add_argument("--summarize", nargs="+", metavar="RESULTS_JSON",
                      help="results.json files (RUN/results.json or copies named RUN.json) to tabulate, "
                           "seeds averaged")
    p.add_argument("--json", help="with --summarize: also write the rows to this JSON file")
    p.add_argument("--data", help="FSSOD folder; default: the data the run trained on")
    p.add_argument("--black-is-class", action="store_true",
                   help="[protocol] the old counting, to compare old rows: black pixels are class 5, "
                        "Coaches & Officials")
    p.add_argument("--out", help="output folder; default: the checkpoint's folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.summarize:
        rows = summarize_runs(a.summarize)
        print(summary_table(rows))
        if a.json:
            summary = rows[0] if len(rows) == 1 else rows
            write_atomically(a.json, (json.dumps(nan_as_null(summary), indent=2) + "\n").encode())
        return
    r = evaluate_checkpoint(a.checkpoint, a.out, a.device, a.black_is_class, a.data)
    print(f"{r['method']}, {r['masks']}, {r['data']} ({r['evaluated_on']}): mIoU {r['strict']['miou']:.2f}  "
          f"FWIoU {r['strict']['fwiou']:.2f}  (strict); per-split mIoU {r['per_split']['miou']:.2f}")
    run_dir = Path(a.checkpoint).parent.parent
    pooled = pool_folds(run_dir, a.device) if r["fold"] is not None and not a.out else None
    if pooled:
        print(f"all {pooled['folds']} folds: mIoU {pooled['strict']['miou']:.2f}  "
              f"FWIoU {pooled['strict']['fwiou']:.2f}")


if __name__ == "__main__":
    report_user_errors(main)
