"""Evaluation: a trained run scored (paper Sec. 3), its folds pooled, Figures 2-3 and Tables 1-2 written.

The paper reports mIoU and FWIoU on FSSOD (metrics.py). FSSOD's black pixels are unlabelled (data.py),
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
from torch.utils.data import DataLoader

from classes import CLASS_NAMES, NUM_CLASSES
from data import open_dataset
from figures import (DISPLAY_PALETTE, as_rgb, cluster_palette, mask_boundaries, plot_classwise_iou,
                     plot_qualitative, results_tables)
from mask_cache import MaskCache, build_cache, make_teacher, missing_frames
from metrics import confusion_matrix, name_channels, remap_confusion, scores_in_percent
from models import load_checkpoint, trained_sbm, trained_student
from utils import report_user_errors, write_atomically

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
    """batch -> the SBM's y_hat (eqs. 1-2) of a saved label-free run: what its student learns from."""
    sbm = trained_sbm(state, device)

    def predict(batch: dict) -> torch.Tensor:
        masks = [cache.load(name).to(device) for name in batch["name"]]
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


def write_run_outputs(results: dict, rows: list[dict], titles: list[str], out_dir: Path) -> None:
    """results.json, classwise_iou.png (Fig. 2), qualitative.png (Fig. 3, from `stage_rows`; none without
    rows) and tables.md of a scored run."""
    write_atomically(out_dir / "results.json", json.dumps(results, indent=2).encode())
    where = f"{Path(results['data']).name}, {results['evaluated_on']}"  # the dataset, not this machine's path
    iou = np.array([np.nan if v is None else v for v in results["strict"]["iou"].values()]) / 100
    plot_classwise_iou(iou, CLASS_NAMES, out_dir / "classwise_iou.png",
                       title=f"{results['method']}, {results['masks']}\nclass-wise IoU, {where}")
    if rows:
        plot_qualitative(rows, out_dir / "qualitative.png", DISPLAY_PALETTE, titles=titles,
                         class_names=CLASS_NAMES, heading=f"{results['method']}, {results['masks']}: {where}")
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
        "folds": args["folds"], "evaluated_on": scored_frames(args),
        "test_frames": list(evaluated.names), "black_is_class": black_is_class,
        "student_weights": state["student_weights"], "sbm_weights": state["sbm_weights"],
        "protocol": protocol(k, args, black_is_class),
        "lambdas": {n: args[f"lambda_{n}"] for n in ("sbm", "bd", "aug")}, "seed": args["seed"],
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
                     titles=[item["name"] for item in items], heading=heading)


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
            "sbm_weights", "protocol", "lambdas", "seed", "epochs", "clusters")
    results = {key: folds[0][key] for key in keep}
    results.update({"evaluated_on": f"all {sum(len(f['test_frames']) for f in folds)} labelled frames, "
                                    f"{results['folds']}-fold cross-validation",
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
