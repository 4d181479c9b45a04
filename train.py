"""
train.py: SoccerSAM, wired together (paper Fig. 1 and section 2.5).

One training step, top to bottom:
  1. the frozen teacher's masks M_1..M_N of each frame come from the cache (sam_teacher.py);
  2. the Semantic Bridging Module turns them into the ensemble pseudo logit map y_hat (eqs. 1-2)
     and learns its clusters label-free (sbm.py);
  3. the student sees the frame and one augmented view of it (eq. 5) and is trained with
     eq. 7 = 0.3 L_sbm (eq. 4) + 1.0 L_bd (eq. 3) + 0.4 L_aug (eq. 6) (losses.py);
  4. two AdamW optimizers, one for the student and one for the SBM, step (paper section 3.1); a fixed
     SBM (`--lambda-self 0`: nothing trains it) has none.

Run it with any number of processes:
    python train.py                                  # built-in synthetic default, no download
    torchrun --nproc_per_node=2 train.py --data ../shared/fssod --out runs/soccersam
DDP uses NCCL on GPUs and gloo on CPUs; only rank 0 writes files. No label is read here, except in
`--supervised` mode, the named MobileNet-UNet baseline of Table 1.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

import evaluate
from data import NUM_CLASSES, open_dataset
from losses import (augmentation_consistency_loss, boundary_consistency_loss, random_spatial_view,
                    sbm_consistency_loss, total_loss)
from sam_teacher import MaskCache, MaskSet, build_cache, missing_frames, teacher_for_run
from sbm import SemanticBridgingModule, cluster_means, merged_kmeans, spherical_kmeans
from student import build_student, trained_student


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic",
                   help="FSSOD folder (the one holding 'Frame 1  (N).jpg', or its parent), or 'synthetic'")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="training size; default 416 608 (the paper's) for FSSOD, 128 192 for synthetic")
    p.add_argument("--num-synthetic", type=int, default=48, help="synthetic training frames")
    p.add_argument("--max-frames", type=int, help="use only the first N training frames (quick checks)")
    p.add_argument("--source", default="superpixel", choices=["sam", "superpixel", "oracle", "student"],
                   help="mask source: SAM (needs --sam-checkpoint), superpixels, the analysis-only oracle, "
                        "or a trained student's segmentation (a second round: --round-one)")
    p.add_argument("--sam-checkpoint", help="official SAM checkpoint, e.g. sam_vit_b_01ec64.pth")
    p.add_argument("--sam-model", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    p.add_argument("--round-one", metavar="CHECKPOINT",
                   help="--source student: the checkpoint.pt of a finished label-free run whose predictions give the masks")
    p.add_argument("--cache", help="mask cache folder; default cache/<data>-<source>-<H>x<W>, "
                                   "or ROUND_ONE_RUN/masks-<H>x<W> for --source student")
    p.add_argument("--out", default="runs/default", help="run folder: checkpoint, results, figures, tables")
    p.add_argument("--epochs", type=int, help="default 30 for FSSOD (RESULTS.md's headline), 6 for synthetic")
    p.add_argument("--batch-size", type=int, default=8, help="frames per process and step")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    # Paper section 3.1: two AdamW optimizers, lr 1e-5, eps 1e-8, weight decay 5e-4. At 1e-5 the
    # student, trained from 80 frames, reaches 8.5 mIoU in 30 epochs (RESULTS.md): ours is 1e-3.
    p.add_argument("--lr", type=float, default=1e-3, help="student learning rate (ours; the paper's: 1e-5)")
    p.add_argument("--lr-sbm", type=float, default=1e-5, help="SBM learning rate (the paper's)")
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                   help="learning rates: constant (the paper names no schedule) or cosine decay to 0 over the run")
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    # Eq. 7 weights: `--lambda-bd 0` is the paper's "w/o L_bd" row of Table 2.
    p.add_argument("--lambda-sbm", type=float, default=0.3)
    p.add_argument("--lambda-bd", type=float, default=1.0)
    p.add_argument("--lambda-aug", type=float, default=0.4)
    p.add_argument("--class-balance", type=float, default=0.0,
                   help="eq. 4 weighs each pixel by (pixels of its pseudo-label in the batch) ** -this (ours; 0 = the paper)")
    p.add_argument("--lambda-self", type=float, default=1.0,
                   help="weight of the SBM's label-free self-labelling objective (SPEC point 1)")
    p.add_argument("--sbm-from-student", action="store_true",
                   help="let eq. 4 train the SBM too (default: y_hat is a fixed target for the student)")
    p.add_argument("--sbm-init", default="kmeans", choices=["kmeans", "kmeans-merge", "random"],
                   help="SBM prototypes start from k-means on the train frames' region embeddings (label-free), "
                        "from --sbm-over-clusters k-means centres merged into --clusters groups (label-free), or at random")
    p.add_argument("--sbm-over-clusters", type=int, default=40, help="k-means centres before merging (--sbm-init kmeans-merge)")
    p.add_argument("--sbm-temperature", type=float, default=0.1,
                   help="temperature of the SBM's mask logits l_i: lower makes y_hat, eq. 4's target, sharper")
    p.add_argument("--sbm-colour-weight", type=float, default=0.0,
                   help="append each cell's CIELAB colour times this to the SBM's features F (ours; 0 = features alone)")
    p.add_argument("--sbm-marginal", default="uniform", choices=["uniform", "start"],
                   help="cluster masses Sinkhorn balances to: equal (SwAV) or those of the starting prototypes")
    p.add_argument("--sbm-prior", metavar="CHECKPOINT",
                   help="ANALYSIS ONLY, uses labels: start the SBM's prototypes from the classes a supervised "
                        "run's student (its checkpoint.pt) predicts on the train frames (SPEC point 7)")
    p.add_argument("--clusters", type=int, default=NUM_CLASSES,
                   help="SBM/student output channels; more than 11 is the majority-naming protocol")
    p.add_argument("--student", default="unet", choices=["unet", "lraspp"],
                   help="the student: MobileNet-UNet (SoccerSAM's) or torchvision's LRASPP-MobileNetV3 (speed/accuracy comparison)")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random"], help="student encoder")
    p.add_argument("--sbm-backbone", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random", "sam"])
    p.add_argument("--supervised", action="store_true",
                   help="the supervised MobileNet-UNet baseline: cross-entropy on the ground truth (uses labels)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.size is None:
        args.size = [128, 192] if args.data == "synthetic" else [416, 608]
    if args.epochs is None:
        args.epochs = 6 if args.data == "synthetic" else 30
    if args.source == "student" and not (args.round_one or args.cache):
        p.error("--source student: pass --round-one RUN/checkpoint.pt (a finished label-free run) or a --cache it filled")
    if args.round_one and args.source != "student":
        p.error("--round-one gives the masks of --source student only: add --source student or drop --round-one")
    if args.cache is None and args.source == "student":
        args.cache = str(Path(args.round_one).parent / f"masks-{args.size[0]}x{args.size[1]}")
    elif args.cache is None:
        args.cache = f"cache/{Path(args.data).name}-{args.source}-{args.size[0]}x{args.size[1]}"
    if any(side % 32 for side in args.size):
        # The student's encoder downsamples 32x; fail here, before a mask cache is built for nothing.
        p.error(f"--size {args.size[0]} {args.size[1]}: H and W must be multiples of 32, e.g. 416 608 or 224 320")
    if args.supervised and args.clusters != NUM_CLASSES:
        p.error("--supervised trains the 11 classes directly: leave --clusters at 11")
    if args.sbm_prior and not os.path.isfile(args.sbm_prior):
        p.error(f"--sbm-prior: no checkpoint at {args.sbm_prior}; train one with --supervised first")
    if args.sbm_prior and args.clusters != NUM_CLASSES:
        p.error("--sbm-prior names the 11 classes: leave --clusters at 11")
    return args


# ----------------------------------------------------------------------------------------------
# Processes: one per GPU under torchrun, or a single plain process.

def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    if "RANK" not in os.environ:
        return 0, 1, torch.device(device)
    if not device.startswith("cuda"):
        dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size(), torch.device("cpu")
    # One GPU per process, named to NCCL up front so that it does not guess it from the rank.
    local = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=local)
    return dist.get_rank(), dist.get_world_size(), local


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def broadcast_from_rank0(*tensor_groups) -> None:
    """Every rank takes rank 0's values of these tensors (parameters or buffers), in place."""
    for tensors in tensor_groups:
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


# ----------------------------------------------------------------------------------------------
# Data: frames (no labels) plus the teacher's cached masks.

class FramesWithMasks(Dataset):
    """Adds the cached teacher masks M_1..M_N of each frame (a MaskSet) to the frame itself."""

    def __init__(self, frames: Dataset, cache: MaskCache | None):
        self.frames, self.cache = frames, cache

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.frames[i])
        if self.cache is not None:
            item["masks"], _ = self.cache.load(item["name"])
        return item


def collate(items: list[dict]) -> dict:
    """Frames stack into a batch; masks stay a list, because every frame has its own N."""
    batch = {"image": torch.stack([it["image"] for it in items]), "name": [it["name"] for it in items]}
    if "masks" in items[0]:
        batch["masks"] = [it["masks"] for it in items]
    if "label" in items[0]:
        batch["label"] = torch.stack([it["label"] for it in items])
    return batch


def training_frames(args: argparse.Namespace, labels: bool = False) -> Dataset:
    frames = open_dataset(args.data, "train", tuple(args.size), labels=labels, num_synthetic=args.num_synthetic)
    if args.max_frames:
        frames = torch.utils.data.Subset(frames, range(min(args.max_frames, len(frames))))
    return frames


def mask_cache(args: argparse.Namespace, rank: int, world: int) -> MaskCache:
    """Opens the teacher's cache, building it first on rank 0 when frames are missing (SPEC point 4).

    The teacher is built only then: once the cache holds every training frame, training never
    loads SAM. build_cache skips frames already done and refuses a folder made with other teacher
    settings, so a cache is never a mix of two mask sources.
    """
    # The oracle is the one source that reads the ground truth: it is the analysis-only bound.
    frames = training_frames(args, labels=(args.source == "oracle"))
    if rank == 0 and missing_frames(args.cache, frame_names(frames)):
        build_cache(frames, teacher_for_run(vars(args), args.device), args.cache)
    barrier(world)
    return MaskCache(args.cache, expected_settings={"source": args.source, "image_size": list(args.size)})


def frame_names(frames: Dataset) -> list[str]:
    if isinstance(frames, torch.utils.data.Subset):
        return [frames.dataset.names[i] for i in frames.indices]
    return list(frames.names)


# ----------------------------------------------------------------------------------------------
# The models: an SBM step wrapped for DDP, and the student.

class SBMStep(nn.Module):
    """The SBM's forward pass and its label-free objective in one call, so DDP syncs its gradients.

    With self_labelling=False (--lambda-self 0) the objective, which would weigh nothing, is skipped.
    """

    def __init__(self, sbm: SemanticBridgingModule, self_labelling: bool = True):
        super().__init__()
        self.sbm, self.self_labelling = sbm, self_labelling

    def forward(self, images: torch.Tensor, masks: list[MaskSet]):
        pseudo_logits, covered = self.sbm(images, masks)
        l_self = self.sbm.self_labelling_loss(images, masks) if self.self_labelling else images.new_zeros(())
        return pseudo_logits, covered, l_self


def soccersam_losses(student: nn.Module, sbm_step: nn.Module, images: torch.Tensor, masks: list[MaskSet],
                     args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Everything one label-free step optimises: eq. 7 for the student, self-labelling for the SBM."""
    pseudo_logits, covered, l_self = sbm_step(images, masks)
    target = pseudo_logits if args.sbm_from_student else pseudo_logits.detach()
    # Eq. 5: x_1 is the frame itself and x_2 an augmented view; one forward pass serves both.
    view, spatial = random_spatial_view(images)
    logits_1, logits_2_view = student(torch.cat([images, view])).float().chunk(2)
    logits_2, seen = spatial.invert(logits_2_view)
    l_sbm = sbm_consistency_loss(target.float(), logits_1, valid=covered, class_balance=args.class_balance)
    l_bd = boundary_consistency_loss(logits_1, target.float(), valid=covered)
    l_aug = augmentation_consistency_loss(logits_1, logits_2, valid=seen)
    l_total = total_loss(l_sbm, l_bd, l_aug, args.lambda_sbm, args.lambda_bd, args.lambda_aug)
    return {"loss": l_total + args.lambda_self * l_self, "sbm": l_sbm, "bd": l_bd, "aug": l_aug, "self": l_self}


@torch.no_grad()
def initial_prototypes(sbm: SemanticBridgingModule, dataset: FramesWithMasks, args: argparse.Namespace,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the SBM's classifier starts: K centres of the region embeddings of all training frames,
    and the region mass (the same area ** area_power weights) nearest to each centre.

    Label-free (the default): spherical k-means, regions weighted by area ** area_power as in the
    objective; with --sbm-init kmeans-merge, more k-means centres merged into K groups (`merged_kmeans`).
    With --sbm-prior (analysis only): each region's class is the supervised student's
    majority prediction over it, and the centres are the class means.
    """
    prior = None
    if args.sbm_prior:
        state = torch.load(args.sbm_prior, map_location=device, weights_only=False)
        if state["args"]["clusters"] != NUM_CLASSES:
            raise ValueError(f"--sbm-prior {args.sbm_prior}: its student has {state['args']['clusters']} outputs, "
                             f"not the {NUM_CLASSES} classes; pass a --supervised run's checkpoint")
        prior = trained_student(state, device)
    embeddings, weights, classes = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        image = item["image"][None].to(device)
        masks = item["masks"].to(device)
        embeddings.append(sbm.region_embeddings(sbm.dense_features(image)[0], masks))
        weights.append(masks.areas() ** sbm.objective_settings["area_power"])
        if prior is not None:
            predicted, covered = prior(image)[0].argmax(0), masks.segments >= 0
            pixels_per_class = torch.bincount(masks.segments[covered] * NUM_CLASSES + predicted[covered],
                                              minlength=masks.num_segments * NUM_CLASSES)
            mask_votes = masks.membership.float() @ pixels_per_class.view(-1, NUM_CLASSES).float()
            classes.append(mask_votes.argmax(dim=1))
    embeddings, weights = F.normalize(torch.cat(embeddings), dim=1), torch.cat(weights)
    if prior is not None:
        centres = cluster_means(embeddings, weights, torch.cat(classes), NUM_CLASSES)
    elif args.sbm_init == "kmeans-merge":
        centres = merged_kmeans(embeddings, weights, sbm.num_clusters, args.sbm_over_clusters,
                                generator=torch.Generator().manual_seed(args.seed))
    else:
        centres = spherical_kmeans(embeddings, weights, sbm.num_clusters, generator=torch.Generator().manual_seed(args.seed))
    nearest = (embeddings @ centres.T).argmax(dim=1)
    return centres, torch.zeros(len(centres), device=weights.device).index_add_(0, nearest, weights)


def supervised_losses(student: nn.Module, images: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
    """The MobileNet-UNet baseline of Table 1: plain pixel-wise cross-entropy on the ground truth."""
    loss = F.cross_entropy(student(images).float(), label, ignore_index=255)
    return {"loss": loss, "ce": loss}


def learning_rate_factor(step: int, total_steps: int, schedule: str) -> float:
    """The share of the base learning rate at `step`: 1 throughout, or a cosine from 1 down to 0."""
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1)))


# ----------------------------------------------------------------------------------------------
# Checkpoints: written by rank 0 to a temporary name, then renamed, so a kill never corrupts one.

def training_step(batch: dict, student: nn.Module, sbm_step: nn.Module | None,
                  optimizers: list[torch.optim.Optimizer], args: argparse.Namespace,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """One step from a batch in host memory to every AdamW update: eq. 7 and the SBM's objective,
    or the supervised cross-entropy. Returns the losses (the log's parts)."""
    is_cuda = device.type == "cuda"
    images = batch["image"].to(device, non_blocking=True)
    if is_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda):
        if args.supervised:
            parts = supervised_losses(student, images, batch["label"].to(device))
        else:
            masks = [m.to(device, non_blocking=True) for m in batch["masks"]]
            parts = soccersam_losses(student, sbm_step, images, masks, args)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    for optimizer in optimizers:
        optimizer.step()
    return parts


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    rank, world, device = setup_distributed(args.device)
    is_cuda = device.type == "cuda"
    out = Path(args.out)
    ckpt_path = out / "checkpoint.pt"
    if args.resume and not ckpt_path.exists():
        raise SystemExit(f"--resume: no checkpoint at {ckpt_path}; start without --resume or pass the run's --out")
    torch.manual_seed(args.seed)

    frames = training_frames(args, labels=args.supervised)
    if len(frames) < world:
        raise SystemExit(f"{len(frames)} training frames cannot be shared by {world} processes: "
                         f"use fewer processes (--nproc_per_node) or more frames")
    cache = None if args.supervised else mask_cache(args, rank, world)
    dataset = FramesWithMasks(frames, cache)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=args.workers, pin_memory=is_cuda, persistent_workers=args.workers > 0)

    student = build_student(args.student, args.clusters, args.encoder).to(device)
    sbm = None if args.supervised else SemanticBridgingModule(
        num_clusters=args.clusters, backbone=args.sbm_backbone, sam_checkpoint=args.sam_checkpoint,
        sam_model_type=args.sam_model, colour_weight=args.sbm_colour_weight,
        label_temperature=args.sbm_temperature).to(device)
    if is_cuda:
        student = student.to(memory_format=torch.channels_last)
    if rank == 0:
        print(f"student: {student.describe()}")
        if sbm is not None:
            print(f"SBM: {sbm.weights_description}; K = {sbm.num_clusters} clusters; objective {sbm.objective_settings}")
            print(f"mask source: {args.source}; cache: {args.cache} ({len(cache.names)} frames)")

    # Nothing trains the SBM when its objective is off and eq. 4 is detached: it is then a fixed
    # teacher, run without gradients and without an optimizer (DDP must not wait for its gradients).
    sbm_trains = sbm is not None and (args.lambda_self > 0 or args.sbm_from_student)
    if sbm is not None and not sbm_trains:
        sbm.requires_grad_(False)
    adamw = dict(eps=args.eps, weight_decay=args.weight_decay)
    opt_student = torch.optim.AdamW(student.parameters(), lr=args.lr, **adamw)
    opt_sbm = None if not sbm_trains else torch.optim.AdamW(
        [p for p in sbm.parameters() if p.requires_grad], lr=args.lr_sbm, **adamw)

    start_epoch = 0
    if args.resume:
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        student.load_state_dict(state["student"])
        opt_student.load_state_dict(state["opt_student"])
        if sbm is not None:
            sbm.load_state_dict(state["sbm"])
        if opt_sbm is not None:
            opt_sbm.load_state_dict(state["opt_sbm"])
        start_epoch = state["epoch"] + 1
        if rank == 0:
            print(f"resumed from {ckpt_path} after epoch {state['epoch'] + 1}")

    elif sbm is not None and rank == 0 and (args.sbm_init != "random" or args.sbm_prior):
        # Rank 0 alone: DDP copies rank 0's parameters to every rank when it wraps the SBM below.
        t0 = time.perf_counter()
        centres, masses = initial_prototypes(sbm, dataset, args, device)
        sbm.set_prototypes(centres, masses if args.sbm_marginal == "start" else None)
        print(f"SBM prototypes from {'the labelled prior ' + args.sbm_prior if args.sbm_prior else args.sbm_init + ' (label-free)'}"
              f" on the region embeddings of {len(dataset)} train frames ({time.perf_counter() - t0:.1f} s)")

    ddp = (lambda m: DistributedDataParallel(m, device_ids=[device.index] if is_cuda else None)) \
        if world > 1 else (lambda m: m)
    student_ddp = ddp(student)
    if world > 1 and sbm is not None and not sbm_trains:
        # No DDP wrapper to copy rank 0's k-means prototypes to the other ranks: copy them here.
        broadcast_from_rank0(sbm.parameters(), sbm.buffers())
    # The objective is skipped whenever its weight is 0; only an SBM that trains is wrapped for DDP.
    sbm_step = None if sbm is None else SBMStep(sbm, self_labelling=args.lambda_self > 0)
    if sbm_trains:
        sbm_step = ddp(sbm_step)
    optimizers = [opt_student] if opt_sbm is None else [opt_student, opt_sbm]
    base_lrs = [args.lr] if opt_sbm is None else [args.lr, args.lr_sbm]
    total_steps = args.epochs * len(loader)

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    # Throughput counts every epoch but the first of this process, which pays for worker start-up and
    # cuDNN autotuning; a run of one epoch counts that one.
    steady_images, steady_seconds = 0, 0.0
    for epoch in range(start_epoch, args.epochs):
        # Seeding each epoch (and rank) makes a resumed run take the same random draws as an unbroken one.
        torch.manual_seed(args.seed + 1000 * epoch + rank)
        sampler.set_epoch(epoch)
        student.train()
        totals: dict[str, float] = {}
        epoch_images, t0 = 0, time.perf_counter()
        for i, batch in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=rank != 0, leave=False)):
            factor = learning_rate_factor(epoch * len(loader) + i, total_steps, args.schedule)
            for optimizer, base_lr in zip(optimizers, base_lrs):
                optimizer.param_groups[0]["lr"] = base_lr * factor
            parts = training_step(batch, student_ddp, sbm_step, optimizers, args, device)
            epoch_images += batch["image"].shape[0] * world
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        if world > 1:
            # DDP averages gradients but each rank keeps its own BatchNorm running statistics after the
            # last step; rank 0's are the ones saved, so every rank takes them.
            broadcast_from_rank0(student.buffers())
        if is_cuda:
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - t0
        if epoch == start_epoch + 1:
            steady_images, steady_seconds = 0, 0.0
        steady_images, steady_seconds = steady_images + epoch_images, steady_seconds + epoch_seconds
        if rank == 0:
            means = "  ".join(f"{k} {v / len(loader):.4f}" for k, v in totals.items())
            print(f"epoch {epoch + 1}/{args.epochs}  {means}  ({epoch_images / epoch_seconds:.1f} img/s)")
            save_checkpoint(ckpt_path, {
                "epoch": epoch, "args": vars(args), "student": student.state_dict(),
                "opt_student": opt_student.state_dict(),
                "sbm": None if sbm is None else sbm.state_dict(),
                "opt_sbm": None if opt_sbm is None else opt_sbm.state_dict(),
                "student_weights": student.weights_description,
                "sbm_weights": None if sbm is None else sbm.weights_description,
            })
        barrier(world)

    # One write with its newline: every rank prints this line at once, and print() would write the
    # newline separately, letting two ranks' lines run together.
    sys.stdout.write(f"rank {rank}: student weights digest {weights_digest(student)}"
                     + ("" if sbm is None else f", SBM weights digest {weights_digest(sbm)}") + "\n")
    sys.stdout.flush()
    results = None
    if rank == 0:
        results = evaluate.evaluate_checkpoint(ckpt_path, out_dir=out, device=str(device),
                                               train_img_per_s=steady_images / max(steady_seconds, 1e-9))
    barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return results


if __name__ == "__main__":
    main()
