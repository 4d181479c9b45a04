"""Evaluation, paper section 3: a trained run scored, its folds pooled, Figures 2-3 and Tables 1-2 written.

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

The paper reports mean IoU (mIoU) and frequency-weighted IoU (FWIoU) on FSSOD (section 3.1, "the
metrics we used"), in Table 1 and Figure 2 (section 3.2), Table 2 (section 3.3) and Figure 3 (section
3.4). Both scores come from one confusion matrix: rows are the true classes, columns the predicted
channels. The IoU of a class is its diagonal entry over (row sum + column sum - diagonal); a class absent
from the ground truth of the scored frames has no IoU and is left out of the mean; FWIoU weighs each
class's IoU by its share of the labelled pixels. Every run's protocol sentence says over which classes
its means are: FSSOD's black pixels are unlabelled (data.py), so "Coaches & Officials" never occurs there
and its scores are over the 10 classes that do; the synthetic scenes draw officials, 11 classes.

The paper does not say how a label-free student's K output channels get class names. They are clusters
and must be named before they can be scored. Strict protocol, our headline: Hungarian
matching (K = 11) on the confusion matrix of the frames the run *trained* on fixes one channel -> class
mapping, which is then applied unchanged to its test frames. Per-split protocol, the usual one in
unsupervised segmentation and reported beside it, labelled as such: the matching is fitted on the test
frames themselves. With more clusters than classes (K > 11), each channel is named by its majority class
on the training frames.

The paper scores on FSSOD's frames; ours is a 5-fold cross-validation (data.fold_of_frames), because
frames 1-10 are not a representative test split: each fold's run trains on four fifths of the frames, is
named on them and scored on the last fifth; `pool_folds` sums the five named test confusion matrices into
one, so every labelled frame counts exactly once, and reports the spread over folds beside it.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.utils.data import DataLoader

from classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from data import MASK_SUFFIX, open_dataset, read_mask
from engineering.files import report_user_errors, write_atomically
from figures import (DISPLAY_PALETTE, as_rgb, cluster_palette, mask_boundaries, painted_ids,
                     plot_classwise_iou, plot_qualitative, results_tables)
from models import load_checkpoint, trained_sbm, trained_student
from sam_teacher import MaskCache, build_cache, make_teacher, missing_frames

# ----------------------------------------------------------------------------------------------
# The paper's scores, and how label-free clusters are named.

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
    (K = 11) or majority naming (K > 11) on `conf`."""
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
# A run scored: its checkpoint on its test frames, Figures 2-3 and Tables 1-2; its folds pooled.

SMALL_CLASSES = (1, 4, 7, 8)  # referee, ball, goalkeepers: where label-free methods fail
FIGURE_FRAMES = 4  # Figure 3 shows the frames richest in small classes


@torch.no_grad()
def predicted_confusion(predict, dataset, num_predicted: int, device: str) -> tuple[np.ndarray, list[tuple]]:
    """Confusion matrix (C, K) of the argmax channels of `predict(batch) -> logits (B, K, H, W)` over
    a labelled split, and (small-class pixels, name) of every frame."""
    conf, frames = np.zeros((NUM_CLASSES, num_predicted), np.int64), []
    for batch in DataLoader(dataset, batch_size=4):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            pred = predict(batch).argmax(1).cpu()
        conf += confusion_matrix(pred, batch["label"], NUM_CLASSES, num_predicted)
        frames += [(int(np.isin(label.numpy(), SMALL_CLASSES).sum()), name)
                   for name, label in zip(batch["name"], batch["label"])]
    return conf, frames


def check_labelled_frames(data: str, max_frames: int | None = None) -> None:
    """Evaluation's check, run before training: it READS THE MASKS. Every mask that scoring a run on
    `data` will read (all frames, or the --max-frames chosen) must decode and use only the colours of
    the class table, else a ValueError names the file (`data.read_mask`), before a fold trains for
    nothing. About 50 ms a 1080p mask. Synthetic scenes, or frames without masks: nothing to check."""
    if str(data) == "synthetic":
        return
    frames = open_dataset(data, "all", max_frames=max_frames)
    if frames.has_masks:
        for name in frames.names:
            read_mask(frames.folder / (name + MASK_SUFFIX))


def run_splits(args: dict, black_is_class: bool = False, data: str | None = None):
    """The two labelled splits of a run (its train.py args): the frames it trained on, where its
    channels are named, and the frames it is scored on (its fold, or the single split's test frames)."""
    common = dict(size=tuple(args["size"]), labels=True, fold=args["fold"], folds=args["folds"],
                  max_frames=args["max_frames"], black_is_class=black_is_class)
    data = data or args["data"]
    return open_dataset(data, "train", **common), open_dataset(data, "test", **common)


def run_masks(args: dict, splits, device: str) -> MaskCache:
    """The run's mask cache, with the masks of every frame of `splits` (datasets) it still lacks added
    (the teacher sees only the image, except the oracle source)."""
    for frames in splits:
        if missing_frames(args["cache"], frames.names):
            teacher = make_teacher(args["source"], args["sam_checkpoint"], device)
            build_cache(frames, teacher, args["cache"], progress=False)
    return MaskCache(args["cache"], expected_settings={"source": args["source"], "image_size": args["size"]})


def sbm_predictor(state: dict, cache: MaskCache, device: str):
    """batch -> the SBM's y_hat (eqs. 1-2) of a saved label-free run: what its student learns from, in fp32
    as training computes it (also under the bf16 autocast that scores the student on a GPU)."""
    sbm = trained_sbm(state, device)

    def predict(batch: dict) -> torch.Tensor:
        masks = [cache.load(name).to(device) for name in batch["name"]]
        with torch.autocast(torch.device(device).type, enabled=False):
            return sbm(batch["image"].to(device), masks)[0]
    return predict


def stage_rows(state: dict, items: list[dict], mapping: np.ndarray | None, device: str,
               cache: MaskCache | None = None) -> list[dict]:
    """Figure 3's rows for these frames (dataset items) of a saved run: the input, the teacher's masks,
    the SBM's pseudo-labels, the student's prediction and the ground truth (the ones the run has).
    mapping names pseudo-labels and prediction alike (None: the clusters stay unnamed)."""
    student = trained_student(state, device)
    sbm = None if cache is None else sbm_predictor(state, cache, device)

    def name(channels: np.ndarray) -> np.ndarray:
        return channels if mapping is None else mapping[channels]

    rows = []
    for item in items:
        batch = {key: [value] if key == "name" else value[None] for key, value in item.items()}
        with torch.no_grad():
            row = {"input": as_rgb(item["image"])}
            if sbm is not None:
                row["teacher's masks"] = mask_boundaries(item["image"], cache.load(item["name"]).segments)
                row["SBM pseudo-labels"] = name(sbm(batch)[0].argmax(0).cpu().numpy())
            row["student"] = name(student(batch["image"].to(device))[0].argmax(0).cpu().numpy())
        if "label" in item:
            row["ground truth"] = item["label"].numpy()
        rows.append(row)
    return rows


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


def scored_frames(args: dict) -> str:
    """Which frames a run (its train.py args) is scored on, in words."""
    if args["data"] == "synthetic":
        return "the synthetic test scenes, drawn from other seeds than the training scenes"
    if args["fold"] is None:
        return "the single split's test frames"
    return f"fold {args['fold']} of {args['folds']}"


def protocol(clusters: int, args: dict, black_is_class: bool, present: list[bool]) -> str:
    """One sentence saying how a run (its train.py args: data, fold, folds, supervised) was scored: the
    frames (where `scored_frames` does not say it), the naming, and over which classes the means are
    (present: (C,) whether each class occurs in the scored labels)."""
    parts = []
    if args["data"] != "synthetic":
        parts.append("split.json's single split" if args["fold"] is None else
                     f"{args['folds']}-fold cross-validation, contiguous blocks by frame number, each frame "
                     "scored once and the test folds' confusion matrices summed")
    if args["supervised"]:
        parts.append("supervised: channels are the classes")
    elif clusters == NUM_CLASSES:
        parts.append("strict: clusters named by Hungarian matching on the training frames")
    else:
        parts.append(f"majority: each of {clusters} clusters named by its majority class on the training "
                     "frames")
    absent = [name for name, here in zip(CLASS_NAMES, present) if not here]
    classes = f"mIoU over the {sum(present)} classes present"
    if absent:
        classes += f", {', '.join(absent)} absent"
    if args["data"] != "synthetic":  # the synthetic scenes draw officials as a class; FSSOD's black is gaps
        classes = ("black pixels counted as class 5, Coaches & Officials (the old counting)" if black_is_class
                   else "black pixels ignored (annotation gaps)") + f": {classes}"
    return "; ".join(parts + [classes])


def classes_present(named_conf) -> list[bool]:
    """(C,) whether each class occurs in the labels of a named (C, C) confusion matrix (its row sums)."""
    return (np.asarray(named_conf).sum(axis=1) > 0).tolist()


def write_run_outputs(results: dict, rows: list[dict], titles: list[str], out_dir: Path) -> None:
    """results.json, classwise_iou.png (Fig. 2), qualitative.png (Fig. 3, from `stage_rows`; none without
    rows) and tables.md of a scored run."""
    write_atomically(out_dir / "results.json", json.dumps(results, indent=2).encode())
    # The dataset by its folder's name, not this machine's path; the synthetic scenes say it themselves.
    where = (results["evaluated_on"] if results["data"] == "synthetic"
             else f"{Path(results['data']).name}, {results['evaluated_on']}")
    # The figures do not print the protocol: a pooled run's say it is a cross-validation.
    shown_where = where + (f", {results['folds']}-fold cross-validation" if "fold_miou" in results else "")
    iou = np.array([np.nan if v is None else v for v in results["strict"]["iou"].values()]) / 100
    present = ~np.isnan(iou)
    plot_classwise_iou(iou, CLASS_NAMES, out_dir / "classwise_iou.png",
                       title=f"{results['method']}, {results['masks']}\nclass-wise IoU, {shown_where}\n"
                             f"mIoU {results['strict']['miou']:.2f}: the mean over the {present.sum()} "
                             "classes present")
    if rows:
        # Every id painted is named; a class the labels lack (FSSOD's "Coaches & Officials": its black
        # pixels are gaps) still gets a cluster from one-to-one matching, and the legend says so.
        names = {c: name if here else f"{name} (not in the labels)"
                 for c, (name, here) in enumerate(zip(CLASS_NAMES, present))}
        naming = ("" if results["mask_source"] is None else
                  "The clusters are named on the run's training frames (Hungarian matching, or majority "
                  "for K > 11), never trained on a label: a wrong name, such as pitch stripes as a "
                  "goalkeeper, is the method's error.")
        unmatched = [CLASS_NAMES[c] for c in painted_ids(rows) if c < NUM_CLASSES and not present[c]]
        if naming and unmatched and results["clusters"] == NUM_CLASSES:
            naming += (f"\n{', '.join(unmatched)}: not in the labels, so the one-to-one matching named with "
                       "it the cluster it had no class for; none of that cluster's pixels can be right.")
        plot_qualitative(rows, out_dir / "qualitative.png", DISPLAY_PALETTE, titles=titles, class_names=names,
                         heading=f"{results['method']}, {results['masks']}: {shown_where}", footnote=naming)
    write_atomically(out_dir / "tables.md", results_tables(results, where).encode())


def evaluate_checkpoint(checkpoint: str | Path, out_dir: str | Path | None = None, device: str = "cpu",
                        black_is_class: bool = False, data: str | None = None, figures: bool = True) -> dict:
    """Scores a saved student on its run's test frames (strict and per-split protocols, and the SBM's
    pseudo-labels) and writes results.json into `out_dir`, with the figures and tables unless
    figures=False (a fold of a cross-validation: `pool_folds` draws them for the whole run)."""
    state = load_checkpoint(checkpoint)
    args, k = state["args"], state["args"]["clusters"]
    out_dir = Path(out_dir or Path(checkpoint).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    student = trained_student(state, device)
    fit, evaluated = run_splits(args, black_is_class, data)

    conf_fit, _ = predicted_confusion(lambda b: student(b["image"].to(device)), fit, k, device)
    conf, frames = predicted_confusion(lambda b: student(b["image"].to(device)), evaluated, k, device)
    mapping = name_channels(conf_fit, args["supervised"])
    named = {"strict": remap_confusion(conf, mapping), "train_split": remap_confusion(conf_fit, mapping),
             "per_split": remap_confusion(conf, name_channels(conf, args["supervised"]))}
    cache = None
    if not args["supervised"]:
        cache = run_masks(args, (fit, evaluated), device)
        pseudo_fit, pseudo = (predicted_confusion(sbm_predictor(state, cache, device), frames, k, device)[0]
                              for frames in (fit, evaluated))
        pseudo_mapping = name_channels(pseudo_fit, supervised=False)
        named["pseudo_labels"] = remap_confusion(pseudo, pseudo_mapping)
        named["pseudo_labels_train"] = remap_confusion(pseudo_fit, pseudo_mapping)
    method, masks = describe_run(args)
    richest = sorted(frames, key=lambda f: -f[0])[:FIGURE_FRAMES]
    results = {
        "method": method, "masks": masks, "mask_source": None if args["supervised"] else args["source"],
        "data": str(data or args["data"]), "size": list(args["size"]), "fold": args["fold"],
        "folds": args["folds"], "max_frames": args["max_frames"], "evaluated_on": scored_frames(args),
        "test_frames": list(evaluated.names), "black_is_class": black_is_class,
        "student_weights": state["student_weights"], "sbm_weights": state["sbm_weights"],
        "protocol": protocol(k, args, black_is_class, classes_present(named["strict"])),
        "lambdas": {n: args[f"lambda_{n}"] for n in ("sbm", "bd", "aug")},
        "seed": args["seed"],
        "epochs": state["epoch"] + 1, "clusters": k, "mapping": mapping.tolist(),
        **{key: scores_in_percent(c) for key, c in named.items()},
        "confusion": {key: c.tolist() for key, c in named.items()},
        "richest_frames": richest,
    }
    if figures:
        items = [evaluated[evaluated.names.index(name)] for _, name in richest]
        write_run_outputs(results, stage_rows(state, items, mapping, device, cache), [n for _, n in richest],
                          out_dir)
    else:
        write_atomically(out_dir / "results.json", json.dumps(results, indent=2).encode())
    return results


def draw_predictions(checkpoint: str | Path, device: str = "cpu") -> None:
    """For a run on unlabelled frames, where nothing can be scored: qualitative.png shows the first
    frames' stages, with the clusters unnamed (naming needs labels)."""
    state = load_checkpoint(checkpoint)
    args = state["args"]
    frames = open_dataset(args["data"], "all", tuple(args["size"]))
    items = [frames[i] for i in range(min(FIGURE_FRAMES, len(frames)))]
    rows = stage_rows(state, items, None, device, run_masks(args, [frames], device))
    heading = f"{describe_run(args)[0]}: unlabelled frames of {Path(args['data']).name}, predicted clusters"
    plot_qualitative(rows, Path(checkpoint).parent / "qualitative.png", cluster_palette(args["clusters"]),
                     titles=[item["name"] for item in items], heading=heading,
                     class_names={k: f"cluster {k}" for k in range(args["clusters"])})


def pool_folds(run_dir: str | Path, device: str = "cpu") -> dict | None:
    """The cross-validated result of a run folder: the named confusion matrices of its folds
    (fold-F/results.json) summed, scored once, with the folds' own mIoU beside them; results.json,
    the figures and the tables are written into run_dir. None while a fold is missing."""
    run_dir = Path(run_dir)
    folds = [json.loads(path.read_text()) for path in sorted(run_dir.glob("fold-*/results.json"))]
    if not folds or sorted(f["fold"] for f in folds) != list(range(folds[0]["folds"])):
        return None
    pooled = {key: np.sum([np.asarray(f["confusion"][key]) for f in folds], axis=0)
              for key in folds[0]["confusion"]}
    fold_miou = [f["strict"]["miou"] for f in folds]
    keep = ("method", "masks", "mask_source", "data", "size", "folds", "black_is_class", "student_weights",
            "sbm_weights", "lambdas", "seed", "epochs", "clusters")
    results = {key: folds[0][key] for key in keep}
    scored, max_frames = sum(len(f["test_frames"]) for f in folds), folds[0].get("max_frames")
    # The folds' settings that `protocol` reads, from their results: a pooled run is a cross-validation.
    settings = {"data": results["data"], "fold": 0, "folds": results["folds"],
                "supervised": results["mask_source"] is None}
    which = (f"{scored} labelled frames spread over the match (--max-frames {max_frames})" if max_frames
             else f"all {scored} labelled frames")
    results.update({"evaluated_on": which,
                    "protocol": protocol(results["clusters"], settings, results["black_is_class"],
                                         classes_present(pooled["strict"])),
                    "max_frames": max_frames,
                    **{key: scores_in_percent(c) for key, c in pooled.items()},
                    "fold_miou": fold_miou, "fold_miou_mean": float(np.mean(fold_miou)),
                    "fold_miou_std": float(np.std(fold_miou, ddof=1)),
                    "confusion": {key: c.tolist() for key, c in pooled.items()}})
    # Figure 3 shows the frames richest in small classes over all folds, each drawn by the run of the fold
    # that held it out (of the folds whose checkpoint is still there).
    kept = [f for f in folds if (run_dir / f"fold-{f['fold']}" / "checkpoint.pt").is_file()]
    richest = sorted(((small, name, f) for f in kept for small, name in f["richest_frames"]),
                     key=lambda r: (-r[0], r[1]))[:FIGURE_FRAMES]
    rows, titles = [], []
    for _, name, fold in richest:
        state = load_checkpoint(run_dir / f"fold-{fold['fold']}" / "checkpoint.pt")
        test = run_splits(state["args"], results["black_is_class"])[1]
        cache = None if state["args"]["supervised"] else run_masks(state["args"], [test], device)
        rows += stage_rows(state, [test[test.names.index(name)]], np.asarray(fold["mapping"]), device, cache)
        titles.append(f"{name} (fold {fold['fold']})")
    write_run_outputs(results, rows, titles, run_dir)
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Score a trained SoccerSAM student: metrics, Figures 2-3 and "
                                            "Tables 1-2 (studies/summarize.py tabulates finished runs over "
                                            "seeds).")
    p.add_argument("--checkpoint", required=True,
                   help="RUN/checkpoint.pt (or RUN/fold-F/checkpoint.pt) written by train.py")
    p.add_argument("--data", help="FSSOD folder; default: the data the run trained on")
    p.add_argument("--black-is-class", action="store_true",
                   help="[protocol] the old counting, to compare old rows: black pixels are class 5, "
                        "Coaches & Officials")
    p.add_argument("--out", help="output folder; default: the checkpoint's folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the student runs: cuda (bf16 autocast) or cpu")
    a = p.parse_args(argv)
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
