"""region_study.py: how much the regions alone decide the SBM's pseudo-labels, without any training.

The SBM names each region by its embedding (eq. 1) and paints the names back (eq. 2); its k-means
start is SPEC's naive floor. This script holds everything else fixed (the frozen Lite0 features, the
region weights area ** 0.5, spherical k-means on the train frames' regions) and swaps the regions:
each mask cache given, and the first cache's regions merged by feature similarity, one of the mask
sources the issue suggests instead of SAM. Merging walks the region adjacency graph of a frame and
joins the most similar neighbours first (scikit-image `merge_hierarchical`), recomputing a merged
region's mean feature, until no two neighbours are closer than 1 - cosine = threshold.
It also tries one change of the features, the SBM's `colour_weight`: each cell's CIELAB colour
appended to F with a weight (`train.py --sbm-colour-weight`). Four of FSSOD's classes (two teams,
two goalkeepers) differ by kit colour, which ImageNet features are trained to ignore.

Labels are read only to score (strict protocol: names fitted on the train split, the test split
scored; 11 clusters by Hungarian matching, more by majority). On a 2-core CPU the command below takes
about 8 minutes:

    python region_study.py --data ../shared/fssod --caches cache/fssod-superpixel-416x608 cache/fssod-oracle-416x608 --merge 0.15 0.3 --colour-weights 0 1 2
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage import graph

import evaluate
from data import NUM_CLASSES
from sam_teacher import MaskCache, MaskSet
from sbm import SemanticBridgingModule, ensemble_pseudo_logits, masked_average_pool, spherical_kmeans


def merge_by_features(masks: MaskSet, features: torch.Tensor, threshold: float) -> MaskSet:
    """Adjacent regions joined, most similar first, while 1 - cosine of their mean features < threshold.

    masks: one region per segment (superpixels); features: (D, h, w) -> MaskSet of the merged regions.
    """
    segments = masks.segments.numpy()
    sums = masked_average_pool(features, masks) * masks.areas()[:, None]
    rag = graph.RAG(segments, connectivity=1)
    for n in rag.nodes:
        rag.nodes[n].update(sum=sums[n].double().numpy(), labels=[n])

    def distance(a: dict, b: dict) -> float:
        return 1.0 - float(a["sum"] @ b["sum"] / (np.linalg.norm(a["sum"]) * np.linalg.norm(b["sum"]) + 1e-12))

    for u, v, edge in rag.edges(data=True):
        edge["weight"] = distance(rag.nodes[u], rag.nodes[v])

    def merge_sums(g, src, dst):
        g.nodes[dst]["sum"] = g.nodes[dst]["sum"] + g.nodes[src]["sum"]

    def new_weight(g, src, dst, n):
        return {"weight": distance(g.nodes[dst], g.nodes[n])}

    merged = graph.merge_hierarchical(segments, rag, threshold, rag_copy=False, in_place_merge=True,
                                      merge_func=merge_sums, weight_func=new_weight)
    merged = np.unique(merged, return_inverse=True)[1].reshape(segments.shape)
    return MaskSet(torch.from_numpy(merged.astype(np.int64)), torch.eye(int(merged.max()) + 1, dtype=torch.bool))


def kmeans_pseudo_label_scores(frames: list[dict], k: int, seed: int, area_power: float) -> tuple[float, float]:
    """k-means start of the SBM on the train frames' regions, its pseudo-labels scored -> (test mIoU, train mIoU)."""
    train = [f for f in frames if f["split"] == "train"]
    centres = spherical_kmeans(torch.cat([f["embeddings"] for f in train]),
                               torch.cat([f["masks"].areas() ** area_power for f in train]), k,
                               generator=torch.Generator().manual_seed(seed))
    confusion = {"train": np.zeros((NUM_CLASSES, k), np.int64), "test": np.zeros((NUM_CLASSES, k), np.int64)}
    for f in frames:
        pseudo_logits, _ = ensemble_pseudo_logits(f["embeddings"] @ centres.T, f["masks"])
        confusion[f["split"]] += evaluate.confusion_matrix(pseudo_logits.argmax(0), f["label"], NUM_CLASSES, k)
    mapping = evaluate.name_channels(confusion["train"], supervised=False)
    return tuple(evaluate.named_scores(confusion[s], mapping)["miou"] for s in ("test", "train"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FSSOD folder")
    p.add_argument("--caches", nargs="+", required=True, help="mask caches holding every frame (sam_teacher.py --split all)")
    p.add_argument("--merge", type=float, nargs="*", default=[], metavar="THRESHOLD",
                   help="also score the first cache's regions merged by feature similarity at these 1 - cosine thresholds")
    p.add_argument("--colour-weights", type=float, nargs="+", default=[0.0],
                   help="SBM colour weights to score (0: the frozen features alone)")
    p.add_argument("--size", type=int, nargs=2, default=[416, 608])
    p.add_argument("--clusters", type=int, nargs="+", default=[NUM_CLASSES, 40])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="k-means seeds")
    a = p.parse_args(argv)
    fit, test = evaluate.labelled_splits(a.data, "test", tuple(a.size))
    images = [dict(dataset[i], split=split) for split, dataset in (("train", fit), ("test", test)) for i in range(len(dataset))]
    area_power = SemanticBridgingModule(num_clusters=NUM_CLASSES).objective_settings["area_power"]

    def frozen_features(colour_weight: float) -> list[torch.Tensor]:
        sbm = SemanticBridgingModule(num_clusters=NUM_CLASSES, colour_weight=colour_weight).eval()
        with torch.no_grad():
            return [sbm.frozen_features(image["image"][None])[0] for image in images]

    t0 = time.perf_counter()
    plain_features = frozen_features(0.0)
    print(f"frozen features of {len(images)} frames: {time.perf_counter() - t0:.0f} s", flush=True)
    # Every source's regions, computed once; merging compares the plain frozen features.
    caches = [MaskCache(folder) for folder in a.caches]
    sources = [(folder, [cache.load(image["name"])[0] for image in images]) for folder, cache in zip(a.caches, caches)]
    for t in a.merge:
        sources.append((f"{a.caches[0]}, merged at {t}", [merge_by_features(masks, features, t)
                                                          for masks, features in zip(sources[0][1], plain_features)]))
    rows = []
    for colour_weight in a.colour_weights:
        features = plain_features if colour_weight == 0 else frozen_features(colour_weight)
        for name, masks in sources:
            t0 = time.perf_counter()
            frames = [{"split": image["split"], "label": image["label"], "masks": m,
                       "embeddings": F.normalize(masked_average_pool(f, m), dim=1)}
                      for image, f, m in zip(images, features, masks)]
            regions = np.mean([len(m) for m in masks])
            for k in a.clusters:
                scores = np.array([kmeans_pseudo_label_scores(frames, k, seed, area_power) for seed in a.seeds])
                rows.append((name, regions, colour_weight, k, scores))
                print(f"{name}: {regions:.0f} regions per frame, colour weight {colour_weight:g}, {k} clusters: "
                      f"test {scores[:, 0].mean():.1f}, train {scores[:, 1].mean():.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    std = (lambda v: f" ± {v.std(ddof=1):.1f}") if len(a.seeds) > 1 else (lambda v: "")
    print(f"\nSBM k-means pseudo-labels (no training), strict protocol, k-means seeds {a.seeds}, mean ± sample std (%):\n")
    print("| regions | regions per frame | colour weight | K | test mIoU | train mIoU |\n|---|---:|---:|---:|---:|---:|")
    for name, regions, colour_weight, k, scores in rows:
        print(f"| {name} | {regions:.0f} | {colour_weight:g} | {k} | {scores[:, 0].mean():.1f}{std(scores[:, 0])} | "
              f"{scores[:, 1].mean():.1f}{std(scores[:, 1])} |")


if __name__ == "__main__":
    main()
