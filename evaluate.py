"""Evaluation: confusion matrices, mIoU / FWIoU, naming of clusters, Figures 2-3, Tables 1-2 (paper Sec. 4).

The paper reports mean intersection over union (mIoU) and frequency-weighted IoU (FWIoU) on FSSOD.
Both come from one confusion matrix: rows are the true classes, columns the predicted channels.
IoU of a class is its diagonal entry over (row sum + column sum - diagonal); a class absent from the
ground truth of the evaluated frames has no IoU (nan) and is left out of the mean; FWIoU weights
each class's IoU by its share of the labelled pixels.

Our method is trained without labels (SPEC point 2), so its K output channels are clusters that
must be named before they can be scored. Strict protocol: Hungarian matching (K = 11) on the
confusion matrix of the *train* split fixes one channel -> class mapping, which is then applied
unchanged to the test split. Per-split protocol, the usual one in unsupervised segmentation and
reported beside it, labelled as such: the matching is fitted on the evaluated split itself. With more
clusters than classes (K > 11), each channel is named by its majority class on the train split.
`remap_confusion` turns a (C, K) confusion matrix into the (C, C) matrix of the named prediction.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.optimize import linear_sum_assignment
from torch.utils.data import DataLoader

from data import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, open_dataset


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
        raise ValueError(f"prediction has {pred.size} pixels but target has {target.size}; pass maps of the same shape")
    valid = target != IGNORE_INDEX
    pred, target = pred[valid], target[valid]
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target ids must lie in 0..{num_classes - 1} or be {IGNORE_INDEX}; got {target.min()}..{target.max()}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_predicted):
        raise ValueError(f"predicted channels must lie in 0..{num_predicted - 1}; got {pred.min()}..{pred.max()}; pass num_predicted")
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
        raise ValueError(f"segmentation_scores needs a square confusion matrix, got {conf.shape}; name the channels first (remap_confusion)")
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
        raise ValueError(f"Hungarian matching needs as many channels as classes, got {conf.shape}; use majority_match for K > C")
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
        raise ValueError(f"mapping has shape {mapping.shape} but the confusion matrix has {conf.shape[1]} channels; pass one class per channel")
    named = np.zeros((conf.shape[0], conf.shape[0]), dtype=conf.dtype)
    np.add.at(named.T, mapping, conf.T)
    return named


def _save(figure: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def plot_classwise_iou(iou: np.ndarray, class_names: list[str], path: str | Path, title: str = "Class-wise IoU") -> None:
    """Figure 2: horizontal bar chart of per-class IoU (fractions, shown in %); nan classes marked n/a."""
    iou = np.asarray(iou, dtype=np.float64)
    figure = Figure(figsize=(7, 0.4 * len(class_names) + 1.2))
    axes = figure.add_subplot()
    positions = np.arange(len(class_names))
    axes.barh(positions, np.nan_to_num(iou * 100), color="tab:blue")
    for position, value in zip(positions, iou):
        axes.text(0.5 if np.isnan(value) else value * 100 + 0.5, position, "n/a" if np.isnan(value) else f"{value * 100:.1f}", va="center", fontsize=8)
    axes.set_yticks(positions, class_names)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("IoU (%)")
    axes.set_title(title)
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


def plot_qualitative(
    images, labels, preds, path: str | Path, palette: np.ndarray, titles: list[str] | None = None, class_names: list[str] | None = None
) -> None:
    """Figure 3: one row per frame, input | ground truth | prediction.

    images: sequence of (3, H, W) float in [0, 1] or (H, W, 3) uint8; labels, preds: sequences of
    (H, W) class ids (predictions already named); palette: (C, 3) uint8. titles name the rows;
    class_names adds a legend of the palette.
    """
    rows = len(images)
    if not (rows == len(labels) == len(preds)) or rows == 0:
        raise ValueError(f"got {len(images)} images, {len(labels)} labels, {len(preds)} predictions; pass the same non-zero number of each")
    height, width = _as_rgb(images[0]).shape[:2]
    figure = Figure(figsize=(3 * 2 * width / height + 0.5, 2 * rows + (0.8 if class_names else 0.3)))
    axes = figure.subplots(rows, 3, squeeze=False)
    for row in range(rows):
        panels = (_as_rgb(images[row]), _paint(labels[row], palette), _paint(preds[row], palette))
        for column, (panel, heading) in enumerate(zip(panels, ("input", "ground truth", "prediction"))):
            axes[row, column].imshow(panel, interpolation="nearest")
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
            if row == 0:
                axes[row, column].set_title(heading)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
    if class_names:
        handles = [Patch(color=np.asarray(colour) / 255, label=name) for colour, name in zip(palette, class_names)]
        figure.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False)
        figure.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        figure.tight_layout()
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


# ----------------------------------------------------------------------------------------------
# A trained student, scored: what `train.py` runs at its end and `python evaluate.py --checkpoint` runs
# on any saved checkpoint. This part wires the model to the metrics above.

PAPER_TABLE_1 = [("FCN", 77.84, 92.26), ("PSPNet", 58.46, 83.96), ("SegNet", 69.7, 90.51),
                 ("VGG-UNet", 83.64, 95.02), ("MobileNet-UNet (supervised)", 84.28, 95.36),
                 ("SoccerSAM", 92.33, 97.2)]
PAPER_TABLE_2 = [("SoccerSAM w/o L_sbm", 88.37, 93.54), ("SoccerSAM w/o L_bd", 87.42, 94.8),
                 ("SoccerSAM w/o L_aug", 89.2, 95.4), ("SoccerSAM", 92.33, 97.2)]
SMALL_CLASSES = (1, 4, 7, 8)  # referee, ball, goalkeepers: where label-free methods fail


def labelled_splits(data: str | Path, split: str, size: tuple[int, int], num_synthetic: int = 48):
    """The two labelled splits of the strict protocol: the train split, where the channel names are
    fitted and then frozen, and `split`, the one scored. Labels are opened here and nowhere in training."""
    return (open_dataset(data, "train", size, labels=True, num_synthetic=num_synthetic),
            open_dataset(data, split, size, labels=True, num_synthetic=num_synthetic))


@torch.no_grad()
def predict_split(predict, dataset, num_predicted: int, device: str, keep: int = 0):
    """Confusion matrix (C, K) of the argmax channels of `predict(batch) -> logits (B, K, H, W)` over
    a labelled split, and the `keep` frames richest in small classes as (images, labels, predicted
    channels) for Figure 3."""
    conf = np.zeros((NUM_CLASSES, num_predicted), np.int64)
    frames = []
    for batch in DataLoader(dataset, batch_size=4):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            pred = predict(batch).argmax(1).cpu()
        conf += confusion_matrix(pred, batch["label"], NUM_CLASSES, num_predicted)
        for image, label, p in zip(batch["image"], batch["label"], pred):
            small = int(np.isin(label.numpy(), SMALL_CLASSES).sum())
            frames.append((small, image.permute(1, 2, 0).numpy(), label.numpy(), p.numpy()))
    frames = sorted(frames, key=lambda f: -f[0])[:keep]
    return conf, frames


def sbm_pseudo_label_scores(state: dict, fit, evaluated, device: str) -> dict:
    """The SBM's own segmentation, the argmax of y_hat (eqs. 1-2), scored with the strict protocol:
    what the student learns from, so the student's score can be read as gain or loss over it.

    Needs the masks of every scored frame: those missing (test frames, or train frames a
    --max-frames run skipped) are added to the run's mask cache (the teacher sees only the image,
    except the analysis-only oracle source).
    """
    from sam_teacher import MaskCache, build_cache, missing_frames, teacher_for_run
    from sbm import SemanticBridgingModule

    args, k = state["args"], state["args"]["clusters"]
    for frames in (fit, evaluated):
        if missing_frames(args["cache"], frames.names):
            build_cache(frames, teacher_for_run(args, device), args["cache"], progress=False)
    cache = MaskCache(args["cache"], expected_settings={"source": args["source"], "image_size": args["size"]})
    sbm = SemanticBridgingModule(num_clusters=k, backbone=args["sbm_backbone"], sam_checkpoint=args["sam_checkpoint"],
                                 sam_model_type=args["sam_model"], colour_weight=args.get("sbm_colour_weight", 0.0))
    sbm.load_state_dict(state["sbm"])
    sbm.to(device).eval()

    def predict(batch: dict) -> torch.Tensor:
        masks = [cache.load(name)[0].to(device) for name in batch["name"]]
        return sbm(batch["image"].to(device), masks)[0]

    conf_fit, _ = predict_split(predict, fit, k, device)
    conf, _ = predict_split(predict, evaluated, k, device)
    mapping = name_channels(conf_fit, supervised=False)
    return dict(named_scores(conf, mapping), train_split_miou=named_scores(conf_fit, mapping)["miou"])


def name_channels(conf: np.ndarray, supervised: bool) -> np.ndarray:
    """Output channel -> class: the identity for the supervised baseline, else Hungarian matching
    (K = 11) or majority naming (K > 11) on `conf` (SPEC point 2)."""
    if supervised:
        return np.arange(conf.shape[1])
    return hungarian_match(conf) if conf.shape[1] == conf.shape[0] else majority_match(conf)


def percent(scores: dict) -> dict:
    return {"miou": 100 * scores["miou"], "fwiou": 100 * scores["fwiou"],
            "pixel_accuracy": 100 * scores["pixel_accuracy"],
            "iou": {name: (None if np.isnan(v) else 100 * float(v)) for name, v in zip(CLASS_NAMES, scores["iou"])}}


def named_scores(conf: np.ndarray, mapping: np.ndarray) -> dict:
    """Scores in % of a (C, K) confusion matrix once its K channels are named by `mapping`."""
    return percent(segmentation_scores(remap_confusion(conf, mapping)))


def table_row(name: str, miou: float, fwiou: float) -> dict:
    return {"method": name, "mIoU (%)": f"{miou:.2f}", "FWIoU (%)": f"{fwiou:.2f}"}


def evaluate_checkpoint(checkpoint: str | Path, data: str | None = None, split: str = "test",
                        out_dir: str | Path | None = None, device: str = "cpu",
                        train_img_per_s: float | None = None) -> dict:
    """Scores a saved student on `split` and writes results.json, the class-wise IoU figure (Fig. 2),
    the qualitative figure (Fig. 3) and the markdown tables (Tables 1 and 2) into `out_dir`."""
    from student import trained_student

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found: pass the checkpoint.pt of a train.py run folder")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    args = state["args"]
    data, size, k = data or args["data"], tuple(args["size"]), args["clusters"]
    out_dir = Path(out_dir or checkpoint.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    student = trained_student(state, device)

    fit, evaluated = labelled_splits(data, split, size, args["num_synthetic"])

    def predict(batch: dict) -> torch.Tensor:
        return student(batch["image"].to(device))

    conf_fit, _ = predict_split(predict, fit, k, device)
    conf, frames = predict_split(predict, evaluated, k, device, keep=4)
    mapping = name_channels(conf_fit, args["supervised"])
    strict = named_scores(conf, mapping)
    per_split = named_scores(conf, name_channels(conf, args["supervised"]))

    if args["supervised"]:
        method = f"{'LRASPP-MobileNetV3' if args.get('student') == 'lraspp' else 'MobileNet-UNet'} (supervised, ours)"
    elif args.get("sbm_prior"):
        method = "SoccerSAM (ours) with a labelled SBM prior (analysis: uses labels)"
    else:
        method = "SoccerSAM (ours, label-free)"
    results = {
        "method": method, "data": str(data), "split": split, "size": list(size),
        "mask_source": None if args["supervised"] else args["source"],
        "student_weights": state["student_weights"], "sbm_weights": state["sbm_weights"],
        "protocol": "strict: channels named by Hungarian matching on the train split, applied to this split"
                    if k == NUM_CLASSES else "majority: each of the K channels named by its majority class on the train split",
        "sbm_init": None if args["supervised"] else args.get("sbm_prior") or args.get("sbm_init"),
        "lambdas": {n: args[f"lambda_{n}"] for n in ("sbm", "bd", "aug", "self")},
        "seed": args["seed"], "epochs": state["epoch"] + 1, "clusters": k,
        "lr": args["lr"], "schedule": args.get("schedule", "constant"), "class_balance": args.get("class_balance", 0.0),
        "mapping": mapping.tolist(), "strict": strict,
        # The train split scored with its own naming: what decisions can be tuned on without the test frames.
        "train_split": named_scores(conf_fit, mapping),
        "per_split": dict(per_split, protocol="channels named on the evaluated split itself (usual unsupervised protocol)"),
        "train_img_per_s": train_img_per_s,
        "sbm_pseudo_labels": None if args["supervised"] else sbm_pseudo_label_scores(state, fit, evaluated, device),
    }
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out_dir / "results.json")

    plot_classwise_iou(np.array([np.nan if v is None else v for v in strict["iou"].values()]) / 100, CLASS_NAMES,
                       out_dir / "classwise_iou.png", title=f"{method}: class-wise IoU, {split} split")
    images, labels, preds = zip(*[(img, lab, mapping[p]) for _, img, lab, p in frames])
    plot_qualitative(images, labels, preds, out_dir / "qualitative.png", PALETTE)
    columns = ["method", "mIoU (%)", "FWIoU (%)"]
    masks = f"{results['mask_source']} masks" if results["mask_source"] else "ground-truth labels"
    ours = table_row(f"{method}, {masks}; {state['student_weights']}", strict["miou"], strict["fwiou"])
    dropped = [f"L_{n}" for n in ("sbm", "bd", "aug") if args[f"lambda_{n}"] == 0]
    ablation = table_row(f"SoccerSAM (ours){' w/o ' + ', '.join(dropped) if dropped else ''}, {masks}",
                   strict["miou"], strict["fwiou"])
    table_1 = [table_row(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_1] + [ours]
    table_2 = [table_row(f"{m} (paper)", a, b) for m, a, b in PAPER_TABLE_2] + [ablation]
    (out_dir / "tables.md").write_text(
        f"Table 1 ({data}, {split} split; ours: {results['protocol']}):\n\n{markdown_table(table_1, columns)}\n\n"
        + ("" if args["supervised"] else f"Table 2 (this run's row):\n\n{markdown_table(table_2, columns)}\n"))
    return results


def summarize_runs(paths: list[str | Path]) -> list[dict]:
    """Rows of RESULTS.md from runs' results.json files: runs named NAME-seedS are one row, mean and
    sample standard deviation over their seeds. Each row: name, seeds, and for strict mIoU / FWIoU,
    per-split mIoU, train-split mIoU, SBM pseudo-label mIoU (test and train split) and the small
    classes' IoU, "mean" and "std"."""
    groups: dict[str, list[dict]] = {}
    for path in sorted(map(Path, paths)):
        name = path.parent.name if path.name == "results.json" else path.stem
        groups.setdefault(name.split("-seed")[0], []).append(json.loads(path.read_text()))
    small = [CLASS_NAMES[c] for c in SMALL_CLASSES]
    rows = []
    for name, runs in groups.items():
        values = {
            "miou": [r["strict"]["miou"] for r in runs], "fwiou": [r["strict"]["fwiou"] for r in runs],
            "per_split_miou": [r["per_split"]["miou"] for r in runs],
            "train_miou": [r["train_split"]["miou"] for r in runs],
            "pseudo_label_miou": [(r["sbm_pseudo_labels"] or {}).get("miou", np.nan) for r in runs],
            "pseudo_label_train_miou": [(r["sbm_pseudo_labels"] or {}).get("train_split_miou", np.nan) for r in runs],
            **{c: [np.nan if r["strict"]["iou"][c] is None else r["strict"]["iou"][c] for r in runs] for c in small},
        }
        row = {"name": name, "seeds": [r["seed"] for r in runs], "mask_source": runs[0]["mask_source"],
               "clusters": runs[0]["clusters"], "epochs": runs[0]["epochs"], "schedule": runs[0].get("schedule", "constant")}
        for key, v in values.items():
            v = np.asarray(v, dtype=float)
            row[key] = {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        rows.append(row)
    return rows


def summary_table(rows: list[dict]) -> str:
    """Markdown table of `summarize_runs` rows: mean ± std where a row has several seeds. Rows with
    K > 11 clusters are named by majority (the secondary protocol), not by Hungarian matching."""
    def cell(v: dict, n: int) -> str:
        return "-" if np.isnan(v["mean"]) else f"{v['mean']:.1f}" + (f" ± {v['std']:.1f}" if n > 1 else "")

    small = [CLASS_NAMES[c] for c in SMALL_CLASSES]
    columns = ["run", "masks", "K", "epochs", "seeds", "mIoU strict", "FWIoU strict", "per-split mIoU", "train mIoU",
               "pseudo-labels mIoU", "pseudo-labels train mIoU", *small]
    lines = ["| " + " | ".join(columns) + " |", "|---|---|---:|---|---|" + "---:|" * (len(columns) - 5)]
    for r in rows:
        n = len(r["seeds"])
        keys = ["miou", "fwiou", "per_split_miou", "train_miou", "pseudo_label_miou", "pseudo_label_train_miou", *small]
        masks = r["mask_source"] or "labels (supervised)"
        lines.append(f"| `{r['name']}` | {masks} | {r['clusters']} | {r['epochs']}{' cosine' if r['schedule'] == 'cosine' else ''} | {' '.join(map(str, r['seeds']))} | " + " | ".join(cell(r[k], n) for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Score a trained SoccerSAM student: metrics, figures, tables; "
                                            "or, with --summarize, tabulate finished runs over their seeds.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="RUN/checkpoint.pt written by train.py")
    what.add_argument("--summarize", nargs="+", metavar="RESULTS_JSON",
                      help="results.json files (RUN/results.json or copies named RUN.json) to tabulate, seeds averaged")
    p.add_argument("--data", help="FSSOD folder or 'synthetic'; default: the data the run trained on")
    p.add_argument("--split", default="test", choices=["train", "test", "all"])
    p.add_argument("--out", help="output folder; default: the checkpoint's folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.summarize:
        print(summary_table(summarize_runs(a.summarize)))
        return
    r = evaluate_checkpoint(a.checkpoint, a.data, a.split, a.out, a.device)
    print(f"{r['method']} on {r['data']} ({r['split']}), mask source {r['mask_source']}: "
          f"mIoU {r['strict']['miou']:.2f}  FWIoU {r['strict']['fwiou']:.2f}  (strict protocol); "
          f"per-split protocol mIoU {r['per_split']['miou']:.2f}")


if __name__ == "__main__":
    main()
