"""summarize.py: finished runs tabulated over their seeds, the rows of RESULTS.md. Not the paper: a study.

    python3 studies/summarize.py results/cv/*.json > results/cv-summary.md
    python3 studies/summarize.py runs/*/results.json --json results/fssod.json

Runs named NAME-seedS (a run folder's results.json, or a copy named NAME-seedS.json) are one row: the
mean and sample standard deviation over their seeds of what evaluate.py scored.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from classes import CLASS_NAMES  # noqa: E402
from evaluate import SMALL_CLASSES  # noqa: E402
from engineering.files import report_user_errors, write_atomically  # noqa: E402


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
    p = argparse.ArgumentParser(description="Tabulate finished runs over their seeds (RESULTS.md's rows).")
    p.add_argument("results", nargs="+", metavar="RESULTS_JSON",
                   help="results.json files (RUN/results.json, or copies named RUN.json)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    a = p.parse_args(argv)
    missing = [path for path in a.results if not Path(path).is_file()]
    if missing:
        # An unquoted pattern that matched nothing reaches us as itself, e.g. 'runs/*/results.json'.
        raise FileNotFoundError(f"{missing[0]}: no such results file (a pattern that matched nothing?); pass "
                                "the results.json of finished runs, e.g. runs/*/results.json")
    rows = summarize_runs(a.results)
    print(summary_table(rows))
    if a.json:
        summary = rows[0] if len(rows) == 1 else rows
        write_atomically(a.json, (json.dumps(nan_as_null(summary), indent=2) + "\n").encode())


if __name__ == "__main__":
    report_user_errors(main)
