"""region_study.py: how much the regions alone decide the SBM's pseudo-labels, without any training.

The SBM names each region by its embedding (eq. 1) and paints the names back (eq. 2); its k-means
start is what a fixed SBM teaches the student. This script holds everything else fixed (the frozen
Lite0 features, regions weighted by area ** 0.5, spherical k-means) and swaps the regions: one mask
cache per source. For each it reports what the regions can hold at best (regions per frame, and the
achievable segmentation accuracy ASA: every region takes its majority class) and what the k-means
pseudo-labels score under train.py's protocol (5-fold cross-validation: k-means fitted and clusters
named on each fold's training frames, the test folds' confusion matrices summed), with and without
each cell's Lab colour appended to F (an SBM option measured and dropped: RESULTS.md), for K = 11
(Hungarian naming) and more
(majority naming). Labels are read only to score. On a 2-core CPU, about a minute per cache:

    python studies/region_study.py --data ../shared/fssod --caches cache/fssod-superpixel-416x608 \
        cache/fssod-boundary-416x608 cache/fssod-oracle-416x608
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import evaluate  # noqa: E402
from classes import BALL, GOAL_BAR, IGNORE_INDEX, NUM_CLASSES  # noqa: E402
from data import FSSOD, fold_of_frames  # noqa: E402
from models import build_sbm  # noqa: E402
from sam_teacher import MaskCache  # noqa: E402
from sbm import AREA_POWER, ensemble_pseudo_logits, masked_average_pool, spherical_kmeans  # noqa: E402


@torch.no_grad()
def cell_lab_colour(images: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """CIELAB colour of each cell of F's grid, / 100 (L in [0, 1]): (B, 3, H, W) in [0, 1] -> (B, 3, h, w).

    The cell's mean RGB is converted (scikit-image, on the CPU: h x w pixels, not H x W).
    """
    cells = F.adaptive_avg_pool2d(images.float(), grid).permute(0, 2, 3, 1)
    lab = torch.from_numpy(rgb2lab(cells.cpu().numpy())).to(images.device, torch.float32)
    return lab.permute(0, 3, 1, 2) / 100


def region_quality(masks, label: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(regions, labelled pixels, (C,) pixels of each class whose region's majority is that class,
    (C,) pixels of each class) of one frame. Regions are the MaskSet's segments (sources that
    partition the frame have one segment per mask)."""
    segments = masks.segments.numpy().ravel()
    label = label.ravel()
    keep = (label != IGNORE_INDEX) & (segments >= 0)
    votes = np.zeros((masks.num_segments, NUM_CLASSES), np.int64)
    np.add.at(votes, (segments[keep], label[keep]), 1)
    majority = votes.argmax(1)[segments[keep]]
    pure = np.bincount(label[keep][majority == label[keep]], minlength=NUM_CLASSES)
    return masks.num_segments, int(keep.sum()), pure, np.bincount(label[keep], minlength=NUM_CLASSES)


def cross_validated_pseudo_labels(frames: list[dict], colour: float, k: int, seed: int,
                                  folds: int) -> tuple[float, float]:
    """k-means pseudo-labels of a fixed SBM under the cross-validated protocol -> (test mIoU, train mIoU)."""
    pooled = {split: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for split in ("test", "train")}
    for fold in range(folds):
        train = [f for f in frames if f["fold"] != fold]
        embeddings = torch.cat([torch.cat([f["embeddings"], colour * f["colour"]], 1) for f in train])
        weights = torch.cat([f["masks"].areas() ** AREA_POWER for f in train])
        centres = spherical_kmeans(embeddings, weights, k, generator=torch.Generator().manual_seed(seed))
        confusion = {split: np.zeros((NUM_CLASSES, k), np.int64) for split in ("test", "train")}
        for f in frames:
            scores = F.normalize(torch.cat([f["embeddings"], colour * f["colour"]], 1), dim=1) @ centres.T
            pseudo_logits, _ = ensemble_pseudo_logits(scores, f["masks"])
            split = "test" if f["fold"] == fold else "train"
            confusion[split] += evaluate.confusion_matrix(pseudo_logits.argmax(0), f["label"], NUM_CLASSES, k)
        mapping = evaluate.name_channels(confusion["train"], supervised=False)
        for split in pooled:
            pooled[split] += evaluate.remap_confusion(confusion[split], mapping)
    return tuple(evaluate.scores_in_percent(pooled[s])["miou"] for s in ("test", "train"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FSSOD folder")
    p.add_argument("--caches", nargs="+", required=True,
                   help="mask caches holding every frame (sam_teacher.py)")
    p.add_argument("--size", type=int, nargs=2, default=[416, 608], metavar=("H", "W"),
                   help="the caches' frame size")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--clusters", type=int, nargs="+", default=[11, 40])
    p.add_argument("--colour-weights", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="k-means seeds")
    args = p.parse_args(argv)

    # Labels only score the regions and the k-means pseudo-labels below: nothing here trains.
    dataset = FSSOD(args.data, "all", tuple(args.size), labels=True)
    fold_of = dict(zip(dataset.names, fold_of_frames(dataset.names, args.folds)))
    sbm = build_sbm(11).eval()
    t0 = time.perf_counter()
    frames = []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            image = item["image"][None]
            features = sbm.dense_features(image)
            frames.append({"name": item["name"], "fold": fold_of[item["name"]],
                           "label": item["label"].numpy(), "features": features[0],
                           "colour": cell_lab_colour(image, features.shape[-2:])[0]})
    print(f"frozen Lite0 features of {len(frames)} frames in {time.perf_counter() - t0:.0f} s")

    print("| regions | per frame | ASA % | ball kept % | goal bar kept % | colour | K | "
          "pseudo-labels test mIoU | train mIoU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cache_dir in args.caches:
        cache = MaskCache(cache_dir, expected_settings={"image_size": args.size})
        counts, labelled, pure, pixels = [], 0, np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES)
        region_frames = []
        for f in frames:
            masks = cache.load(f["name"])
            n, total, kept, present = region_quality(masks, f["label"])
            counts, labelled, pure, pixels = counts + [n], labelled + total, pure + kept, pixels + present
            pooled = {"embeddings": masked_average_pool(f["features"], masks),
                      "colour": masked_average_pool(f["colour"], masks)}
            region_frames.append({**f, **pooled, "masks": masks})
        quality = (f"| {cache.settings['source']} ({Path(cache_dir).name}) | {np.mean(counts):.0f} | "
                   f"{100 * pure.sum() / labelled:.1f} | {100 * pure[BALL] / pixels[BALL]:.0f} | "
                   f"{100 * pure[GOAL_BAR] / pixels[GOAL_BAR]:.0f}")
        for colour in args.colour_weights:
            for k in args.clusters:
                scores = np.array([cross_validated_pseudo_labels(region_frames, colour, k, seed, args.folds)
                                   for seed in args.seeds])
                mean, spread = scores.mean(0), scores.std(0, ddof=1 if len(scores) > 1 else 0)
                print(f"{quality} | {colour:g} | {k} | {mean[0]:.1f} ± {spread[0]:.1f} | "
                      f"{mean[1]:.1f} ± {spread[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
