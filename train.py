"""train.py: SoccerSAM, wired together (paper Fig. 1 and sections 2.5 and 3.1).

One label-free training step, top to bottom (`soccersam_losses`, `training_step`):
  1. the frozen teacher's masks M_1..M_N of each frame come from the cache (mask_cache.py);
  2. the Semantic Bridging Module turns them into the ensemble pseudo logit map y_hat (eqs. 1-2, sbm.py);
  3. the student sees the frame and one augmented view of it (eq. 5) and is trained with
     eq. 7 = 0.3 L_sbm (eq. 4) + 1.0 L_bd (eq. 3) + 0.4 L_aug (eq. 6) (losses.py);
  4. two AdamW optimizers step the two networks (section 3.1): the student, and the SBM's prototypes,
     which k-means places before the first step and eq. 4 then trains: the paper gives the SBM no
     other signal, and no label may give it one (SPEC point 1). `--sbm-lr 0` keeps the SBM fixed.

On FSSOD a run is a 5-fold cross-validation (data.py): five students, each trained on four fifths of
the frames and scored on the fifth, pooled into one score (evaluate.py). Run it with any number of
processes:
    python train.py                                  # built-in synthetic default, no download
    torchrun --nproc_per_node=2 train.py --data ../shared/fssod --out runs/soccersam
DDP uses NCCL on GPUs and gloo on CPUs; only rank 0 writes files. No label is read here, except in
`--supervised` mode (the MobileNet-UNet baseline of Table 1) and by `--sbm-prior` (an analysis row).
"""
import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

import evaluate
from classes import NUM_CLASSES
from data import open_dataset
from losses import (augmentation_consistency_loss, boundary_consistency_loss, random_spatial_view,
                    sbm_boundary, sbm_consistency_loss, total_loss)
from mask_cache import FramesWithMasks, MaskCache, build_cache, collate, make_teacher, missing_frames
from mask_set import MaskSet
from models import build_sbm, prior_region_classes
from settings import parse_args
from sbm import SemanticBridgingModule
from student import build_student
from utils import cpu_threads, report_user_errors, write_atomically

# Paper section 3.1: AdamW with eps 1e-8 and weight decay 5e-4, for both networks.
ADAMW = dict(eps=1e-8, weight_decay=5e-4)


def soccersam_losses(student: nn.Module, sbm: SemanticBridgingModule, images: torch.Tensor,
                     masks: list[MaskSet], embeddings: list[torch.Tensor],
                     args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Eq. 7 for one batch, the way Fig. 1 draws it: masks -> SBM -> y_hat -> three losses on the student.
    embeddings[b]: the eq. 1 region embeddings of masks[b], computed once per run (`region_embeddings`)."""
    target, covered = sbm.pseudo_logits(embeddings, masks)  # the classifier and eq. 2: y_hat
    target = target.float()
    # Eq. 5: x_1 is the frame itself and x_2 an augmented view; one forward pass serves both.
    view, spatial = random_spatial_view(images)
    logits_1, logits_2_view = student(torch.cat([images, view])).float().chunk(2)
    logits_2, seen = spatial.invert(logits_2_view)
    l_bd = boundary_consistency_loss(logits_1, sbm_boundary(target, covered))  # eq. 3, B_SBM fixed
    l_sbm = sbm_consistency_loss(target, logits_1, valid=covered)  # eq. 4, trains student and SBM
    l_aug = augmentation_consistency_loss(logits_1, logits_2, valid=seen)  # eq. 6
    return {"loss": total_loss(l_sbm, l_bd, l_aug, args.lambda_sbm, args.lambda_bd, args.lambda_aug),
            "sbm": l_sbm, "bd": l_bd, "aug": l_aug}


def supervised_losses(student: nn.Module, images: torch.Tensor,
                      label: torch.Tensor) -> dict[str, torch.Tensor]:
    """The MobileNet-UNet baseline of Table 1: plain pixel-wise cross-entropy on the ground truth."""
    loss = F.cross_entropy(student(images).float(), label, ignore_index=255)
    return {"loss": loss, "ce": loss}


def training_step(batch: dict, student: nn.Module, sbm: SemanticBridgingModule | None,
                  optimizers: list[torch.optim.Optimizer], args: argparse.Namespace,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """One step from a batch in host memory to the AdamW updates. Returns the losses (the log's parts).
    batch: "image", and "label" (supervised) or "masks" with their "embeddings" (label-free)."""
    is_cuda = device.type == "cuda"
    images = batch["image"].to(device, non_blocking=True)
    if is_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda):
        if args.supervised:
            parts = supervised_losses(student, images, batch["label"].to(device))
        else:
            masks = [m.to(device, non_blocking=True) for m in batch["masks"]]
            parts = soccersam_losses(student, sbm, images, masks, batch["embeddings"], args)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    if dist.is_initialized() and sbm is not None and sbm.prototypes.grad is not None:
        # DDP averages the student's gradients; the SBM's few are averaged here, so every rank takes
        # the same step and the prototypes stay identical on all of them.
        dist.all_reduce(sbm.prototypes.grad)
        sbm.prototypes.grad /= dist.get_world_size()
    for optimizer in optimizers:
        optimizer.step()
    return parts


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


def broadcast_from_rank0(tensors) -> None:
    """Every rank takes rank 0's values of these tensors (parameters or buffers), in place."""
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


# ----------------------------------------------------------------------------------------------
# One run: a fold of the cross-validation, or the single split.

def training_frames(run: argparse.Namespace, labels: bool = False):
    split = "all" if run.unlabelled else "train"
    return open_dataset(run.data, split, tuple(run.size), labels, run.fold, run.folds, run.max_frames)


def mask_cache(run: argparse.Namespace, names: list[str], rank: int, world: int) -> MaskCache:
    """Opens the teacher's cache, building it first on rank 0 when frames are missing (SPEC point 4).
    The teacher is built only then: once the cache holds every training frame, training never loads SAM."""
    if rank == 0 and missing_frames(run.cache, names):
        # The oracle is the one source that reads the ground truth: it is the analysis-only bound.
        frames = training_frames(run, labels=run.source == "oracle")
        build_cache(frames, make_teacher(run.source, run.sam_checkpoint, run.device), run.cache)
    barrier(world)
    return MaskCache(run.cache, expected_settings={"source": run.source, "image_size": list(run.size)})


@torch.no_grad()
def region_embeddings(sbm: SemanticBridgingModule, dataset: FramesWithMasks,
                      device: torch.device) -> dict[str, torch.Tensor]:
    """Eq. 1's v_i of every training frame, once per run: F is frozen and a frame's masks never change,
    so they are constants, and each step then runs only the SBM's classifier and eq. 2."""
    return {item["name"]: sbm.region_embeddings(item["image"][None].to(device), [item["masks"].to(device)])[0]
            for item in dataset}


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def train_run(run: argparse.Namespace, run_dir: Path, rank: int, world: int, device: torch.device) -> None:
    """Trains one student into run_dir (checkpoint.pt after every epoch) and, on rank 0, scores it."""
    is_cuda = device.type == "cuda"
    ckpt_path = run_dir / "checkpoint.pt"
    torch.manual_seed(run.seed)
    frames = training_frames(run, labels=run.supervised)
    if len(frames) < world:
        raise SystemExit(f"error: {len(frames)} training frames cannot be shared by {world} processes: "
                         "use fewer processes (--nproc_per_node) or more frames")
    dataset = FramesWithMasks(frames, None if run.supervised else mask_cache(run, list(frames.names), rank, world))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=run.seed)
    # No worker processes: after the first epoch every frame and its masks are in memory.
    loader = DataLoader(dataset, batch_size=run.batch_size, sampler=sampler, collate_fn=collate,
                        pin_memory=is_cuda)

    student = build_student(run.student, run.clusters, run.encoder).to(device)
    if is_cuda:
        student = student.to(memory_format=torch.channels_last)
    optimizers = [torch.optim.AdamW(student.parameters(), lr=run.lr, **ADAMW)]
    sbm = None if run.supervised else build_sbm(run.clusters, run.sbm_backbone, run.sam_checkpoint).to(device)
    if sbm is not None:
        embeddings = region_embeddings(sbm, dataset, device)
        sbm.prototypes.requires_grad_(run.sbm_lr > 0)
        if run.sbm_lr > 0:
            optimizers.append(torch.optim.AdamW([sbm.prototypes], lr=run.sbm_lr, **ADAMW))
    if rank == 0:
        print(f"{run_dir}: {student.describe()}")
        if sbm is not None:
            print(f"SBM: {sbm.weights_description}; K = {sbm.num_clusters}; "
                  f"{'lr ' + str(run.sbm_lr) if run.sbm_lr > 0 else 'fixed'}; mask source {run.source}, cache "
                  f"{run.cache}; {len(frames)} training frames")

    start_epoch = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        student.load_state_dict(state["student"])
        if sbm is not None:
            sbm.load_state_dict(state["sbm"])
        for optimizer, saved in zip(optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        start_epoch = state["epoch"] + 1
        if rank == 0:
            print(f"resumed from {ckpt_path} after epoch {start_epoch}")
    elif sbm is not None and rank == 0:
        # Rank 0 alone: the broadcast below gives every rank its prototypes.
        names, masks = list(embeddings), [dataset.loaded[name].to(device) for name in embeddings]
        classes = None
        if run.sbm_prior:
            prior = Path(run.sbm_prior) / ("checkpoint.pt" if run.fold is None else f"fold-{run.fold}/checkpoint.pt")
            images = [item["image"].to(device) for item in dataset]
            classes = prior_region_classes(prior, list(zip(images, masks)), NUM_CLASSES, device)
        sbm.start_prototypes([embeddings[name] for name in names], masks, seed=run.seed, region_classes=classes)
    if world > 1 and sbm is not None:
        broadcast_from_rank0(list(sbm.parameters()) + list(sbm.buffers()))
    student_step = student if world == 1 else DistributedDataParallel(
        student, device_ids=[device.index] if is_cuda else None)

    for epoch in range(start_epoch, run.epochs):
        # Seeding each epoch (and rank) makes a resumed run take the same random draws as an unbroken one.
        torch.manual_seed(run.seed + 1000 * epoch + rank)
        sampler.set_epoch(epoch)
        student.train()
        totals: dict[str, float] = {}
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{run.epochs}", disable=rank != 0, leave=False):
            if sbm is not None:
                batch["embeddings"] = [embeddings[name] for name in batch["name"]]
            for k, v in training_step(batch, student_step, sbm, optimizers, run, device).items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        if world > 1:
            # DDP averages gradients but each rank keeps its own BatchNorm running statistics after the
            # last step; rank 0's are the ones saved, so every rank takes them.
            broadcast_from_rank0(student.buffers())
        if rank == 0:
            means = "  ".join(f"{k} {v / len(loader):.4f}" for k, v in totals.items())
            print(f"epoch {epoch + 1}/{run.epochs}  {means}")
            buffer = io.BytesIO()
            torch.save({"epoch": epoch, "args": vars(run), "student": student.state_dict(),
                        "sbm": None if sbm is None else sbm.state_dict(),
                        "optimizers": [optimizer.state_dict() for optimizer in optimizers],
                        "student_weights": student.weights_description,
                        "sbm_weights": None if sbm is None else sbm.weights_description}, buffer)
            write_atomically(ckpt_path, buffer.getvalue())
        barrier(world)

    # One write with its newline: every rank prints this line at once, and print() would write the
    # newline separately, letting two ranks' lines run together.
    sys.stdout.write(f"rank {rank}: student weights digest {weights_digest(student)}"
                     + ("" if sbm is None else f", SBM weights digest {weights_digest(sbm)}") + "\n")
    sys.stdout.flush()
    if rank == 0 and not run.unlabelled:
        evaluate.evaluate_checkpoint(ckpt_path, device=str(device), figures=run.fold is None)
    elif rank == 0:
        evaluate.draw_predictions(ckpt_path, device=str(device))
    barrier(world)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    rank, world, device = setup_distributed(args.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    else:
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: let cuDNN pick its fastest
    out = Path(args.out)
    frames = open_dataset(args.data, "all", tuple(args.size))
    # native_size: the footage's own frame size, which predict.py compares new footage with.
    args.unlabelled, args.native_size = args.data != "synthetic" and not frames.has_masks, list(frames.native_size)
    if args.unlabelled and rank == 0:
        print(f"note: {args.data} holds frames without masks: training on all of them, and no score "
              "(there is nothing to score)")
    if args.unlabelled or args.folds == 1:
        folds = [None]
    else:
        folds = [args.fold] if args.fold is not None else range(args.folds)
    runs = {fold: out if fold is None else out / f"fold-{fold}" for fold in folds}
    if not args.resume and any((run_dir / "settings.json").exists() for run_dir in runs.values()):
        raise SystemExit(f"error: {out} already holds this run: pass --resume to continue it, or another "
                         "--out")
    barrier(world)  # every rank has looked before rank 0 writes
    for fold, run_dir in runs.items():
        # The run's own fold, and which folds the command trains (for --resume): one setting each.
        run = argparse.Namespace(**{**vars(args), "fold": fold, "command_fold": args.fold, "resume": False})
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(run_dir / "settings.json", json.dumps(vars(run), indent=2).encode())
        barrier(world)
        done = (run_dir / "results.json").exists()
        if done and torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] + 1 >= run.epochs:
            continue  # this run is finished
        train_run(run, run_dir, rank, world, device)
    results = None
    if rank == 0 and not args.unlabelled:
        if folds == [None]:
            results = json.loads((out / "results.json").read_text())
        else:
            results = evaluate.pool_folds(out, str(device))
        if results is not None:
            print(f"{results['method']}, {results['masks']}, {results['evaluated_on']}: "
                  f"mIoU {results['strict']['miou']:.2f}"
                  f"  FWIoU {results['strict']['fwiou']:.2f}  ({results['protocol']})")
            print(f"figures: {out / 'classwise_iou.png'}, {out / 'qualitative.png'}; "
                  f"tables: {out / 'tables.md'}")
        else:
            print(f"fold {args.fold} done; {out / 'results.json'} is written when every fold has finished")
    elif rank == 0:
        print(f"predictions: {out / 'qualitative.png'}")
    barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return results


if __name__ == "__main__":
    report_user_errors(main)
