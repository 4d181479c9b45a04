"""sbm_study.py: the SBM's label-free objective measured against its alternatives, without a student.

SPEC point 1 asks that the SBM's way of learning classes without labels be measured against the
alternatives. The student learns whatever the SBM's pseudo-labels say (eq. 4), so this script
scores the pseudo-labels themselves, the argmax of y_hat (eqs. 1-2), after training the SBM alone
the way train.py does: the same k-means start (`train.initial_prototypes`), the same swapped-
prediction objective (`SemanticBridgingModule.swapped_prediction_loss`), AdamW at lr 1e-3, batches
of 8 frames. One difference keeps it CPU-sized: each frame's frozen features are computed once for
a few colour-jittered views, and every step draws two of them, where train.py jitters afresh.
Labels are read only to score (strict protocol: names fitted on the train split, test split scored).

    python sbm_study.py --data ../shared/fssod --cache cache/fssod-superpixel-416x608
"""
import argparse
import time

import torch

import evaluate
import train
from data import open_dataset
from sam_teacher import MaskCache
from sbm import SemanticBridgingModule, photometric_jitter

VARIANTS = {  # name -> (train.py --sbm-init, train the objective?, area_power of the Sinkhorn marginal,
    #                  keep the start's cluster masses?)
    "k-means start, no objective": ("kmeans", False, 0.5, False),
    "40 k-means centres merged into 11 (--sbm-init kmeans-merge), no objective": ("kmeans-merge", False, 0.5, False),
    "swapped prediction, regions weighted by area^0 (uniform over regions)": ("kmeans", True, 0.0, False),
    "swapped prediction, area^0.5 (train.py's default)": ("kmeans", True, 0.5, False),
    "swapped prediction, area^1 (uniform over pixels)": ("kmeans", True, 1.0, False),
    "swapped prediction, area^0.5, clusters balanced to the k-means start's masses": ("kmeans", True, 0.5, True),
}


def jittered_views(sbm: SemanticBridgingModule, frames, views: int, generator: torch.Generator) -> torch.Tensor:
    """Frozen features of `views` colour-jittered copies of every frame: (views, frames, C, h, w)."""
    jitter = {k: sbm.objective_settings[k] for k in ("brightness", "contrast", "saturation", "hue", "noise_std")}
    out = []
    for view in range(views):
        out.append(torch.cat([sbm.frozen_features(photometric_jitter(frames[i]["image"][None], generator=generator, **jitter))
                              for i in range(len(frames))]))
    return torch.stack(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FSSOD folder")
    p.add_argument("--cache", required=True, help="mask cache holding every frame (python sam_teacher.py --split all)")
    p.add_argument("--size", type=int, nargs=2, default=[416, 608])
    p.add_argument("--steps", type=int, default=300, help="SBM steps (train.py: 30 epochs of 80 frames = 300)")
    p.add_argument("--views", type=int, default=3, help="precomputed jittered views per frame")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    generator = torch.Generator().manual_seed(a.seed)
    cache = MaskCache(a.cache)
    frames = open_dataset(a.data, "train", tuple(a.size))
    masks = [cache.load(name)[0] for name in frames.names]
    fit, test = evaluate.labelled_splits(a.data, "test", tuple(a.size))
    run_args = train.parse_args(["--data", a.data, "--cache", a.cache, "--size", *map(str, a.size), "--seed", str(a.seed)])

    base = SemanticBridgingModule(num_clusters=11)
    with torch.no_grad():
        t0 = time.perf_counter()
        views = jittered_views(base, frames, a.views, generator)
        print(f"frozen features of {a.views} views x {len(frames)} frames: {time.perf_counter() - t0:.0f} s")
        starts = {init: train.initial_prototypes(base, train.FramesWithMasks(frames, cache),
                                                 argparse.Namespace(**{**vars(run_args), "sbm_init": init}), torch.device("cpu"))
                  for init in sorted({variant[0] for variant in VARIANTS.values()})}
    rows = []
    for name, (init, trains, area_power, keep_masses) in VARIANTS.items():
        sbm = SemanticBridgingModule(num_clusters=11, area_power=area_power)
        sbm.load_state_dict(base.state_dict())
        start, masses = starts[init]
        sbm.set_prototypes(start, masses if keep_masses else None)
        t0 = time.perf_counter()
        if trains:
            optimizer = torch.optim.AdamW([q for q in sbm.parameters() if q.requires_grad], lr=1e-3, eps=1e-8, weight_decay=5e-4)
            sbm.train()
            for _ in range(a.steps):
                batch = torch.randperm(len(frames), generator=generator)[:8]
                pair = torch.randperm(a.views, generator=generator)[:2]
                loss = sbm.swapped_prediction_loss(views[pair[0], batch], views[pair[1], batch],
                                                   [masks[i] for i in batch.tolist()])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        state = {"args": {**vars(run_args), "sbm_init": init}, "sbm": sbm.state_dict()}
        scores = evaluate.sbm_pseudo_label_scores(state, fit, test, "cpu")
        rows.append((name, scores["miou"], scores["fwiou"], scores["train_split_miou"]))
        print(f"{name}: test strict mIoU {scores['miou']:.2f} FWIoU {scores['fwiou']:.2f}, "
              f"train {scores['train_split_miou']:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nSBM pseudo-labels, {a.steps} steps, seed {a.seed}, superpixel masks from {a.cache} (%):\n")
    print("| SBM objective | test mIoU (strict) | test FWIoU | train mIoU |\n|---|---:|---:|---:|")
    for name, miou, fwiou, train_miou in rows:
        print(f"| {name} | {miou:.1f} | {fwiou:.1f} | {train_miou:.1f} |")


if __name__ == "__main__":
    main()
