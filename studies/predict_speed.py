"""predict_speed.py: how fast predict.py segments footage, the student against LRASPP, in one process.

A measurement, not the paper. predict.py's own clock (decoding and writing included; warm-up, compilation
and the workers' start not) is read for a student checkpoint and an LRASPP checkpoint on the same --input,
in turns (student, LRASPP, student, LRASPP, ...: a machine's drift hits both), --rounds times each. The
medians go to --json (results/predict.json), written atomically: the device, the commit, the frames, each
model's frames per second and its time split (how long predict's main loop waited for frames, for the
device and for writing; the largest is the `limit`). Any other argument goes to predict.py unchanged
(--compile, --jpeg-decoder pil, --overlay, --batch-size, ...); each run writes into a fresh folder that is
deleted after it. Without --student or --lraspp, untrained checkpoints (`untrained_checkpoint`) are built
at --size: weights do not change the speed.

    python3 studies/predict_speed.py --student RUN/checkpoint.pt --lraspp PEER/checkpoint.pt --input FRAMES
    python3 studies/predict_speed.py --input FRAMES --rounds 3 --compile --json results/predict-compile.json
"""
import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import predict  # noqa: E402
from classes import NUM_CLASSES  # noqa: E402
from engineering.files import write_atomically  # noqa: E402
from models import build_student  # noqa: E402

STAGES = ("frames", "device", "writing")


def untrained_checkpoint(path: Path, architecture: str, size: tuple[int, int] = (416, 608),
                         native_size: tuple[int, int] = (1080, 1920)) -> Path:
    """A checkpoint shaped as train.py writes it, for `architecture` ("unet", the student, or "lraspp") with
    random weights, at the run's frame size=(H, W); the keys that predict.py and models.py read, nothing
    trained."""
    student = build_student(architecture, NUM_CLASSES, "efficientnet_lite0", pretrained=False)
    args = dict(student=architecture, clusters=NUM_CLASSES, encoder="efficientnet_lite0", size=list(size),
                native_size=list(native_size), data="untrained (studies/predict_speed.py)", supervised=False,
                sbm_backbone="efficientnet_lite0", sam_checkpoint=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "args": args, "student": student.state_dict(), "sbm": None, "optimizers": [],
                "student_weights": student.weights_description, "sbm_weights": None}, path)
    return path


def commit() -> str:
    """The repository's short commit, `-dirty` when tracked files differ from it; "unknown" without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's (Linux's /proc/cpuinfo; else what `platform` knows)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []
    return names[0] if names else platform.processor() or platform.machine()


def summary(reports: list[dict]) -> dict:
    """predict.py's reports of one model -> medians of its speed and of each stage's wait, the limit."""
    waits = {f"{stage}_seconds": statistics.median(r[f"{stage}_seconds"] for r in reports)
             for stage in STAGES}
    return {"fps": statistics.median(r["fps"] for r in reports), "fps_runs": [r["fps"] for r in reports],
            "seconds": statistics.median(r["seconds"] for r in reports), **waits,
            "limit": max(STAGES, key=lambda stage: waits[f"{stage}_seconds"])}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="predict.py's --input: a folder of frames or a video")
    p.add_argument("--student", help="the student's checkpoint (default: an untrained one at --size)")
    p.add_argument("--lraspp", help="LRASPP's checkpoint, train.py --student lraspp (default: untrained)")
    p.add_argument("--size", type=int, nargs=2, default=[416, 608], metavar=("H", "W"),
                   help="the untrained checkpoints' frame size")
    p.add_argument("--rounds", type=int, default=2, help="runs of each model, in turns")
    p.add_argument("--json", default=str(ROOT / "results" / "predict.json"), help="where the medians go")
    p.add_argument("--commit", help="the code's commit, where git cannot say it (a copy of the tree)")
    args, predict_args = p.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="predict_speed.") as scratch:
        checkpoints = {"student": args.student or untrained_checkpoint(Path(scratch, "student.pt"), "unet",
                                                                       tuple(args.size)),
                       "lraspp": args.lraspp or untrained_checkpoint(Path(scratch, "lraspp.pt"), "lraspp",
                                                                     tuple(args.size))}
        reports = {model: [] for model in checkpoints}
        for round_ in range(args.rounds):
            for model, checkpoint in checkpoints.items():
                out = Path(scratch, f"{model}-{round_}")
                run_args = predict.parse_args(["--checkpoint", str(checkpoint), "--input", args.input,
                                               "--out", str(out), *predict_args])
                print(f"== {model}, round {round_ + 1} of {args.rounds}", flush=True)
                reports[model].append(predict.predict(run_args))
                shutil.rmtree(out)
    models = {model: summary(runs) for model, runs in reports.items()}
    result = {"device_name": device_name(run_args.device), "commit": args.commit or commit(),
              "frames": reports["student"][0]["frames"],
              "student_fps": models["student"]["fps"], "lraspp_fps": models["lraspp"]["fps"],
              "student_vs_lraspp": models["student"]["fps"] / models["lraspp"]["fps"],
              "student": models["student"], "lraspp": models["lraspp"],
              "input": args.input, "predict_args": predict_args, "rounds": args.rounds,
              "device": run_args.device, "batch_size": run_args.batch_size, "workers": run_args.workers,
              "writers": run_args.writers, "torch": torch.__version__, "torchvision": torchvision.__version__}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.json, (json.dumps(result, indent=2) + "\n").encode())
    print(f"{'model':8} {'fps':>8} {'seconds':>8} {'frames s':>9} {'device s':>9} {'writing s':>10}  limit")
    for model, m in models.items():
        print(f"{model:8} {m['fps']:8.1f} {m['seconds']:8.2f} {m['frames_seconds']:9.2f} "
              f"{m['device_seconds']:9.2f} {m['writing_seconds']:10.2f}  {m['limit']}")
    print(f"student / LRASPP: {result['student_vs_lraspp']:.2f}; {result['frames']:,} frames on "
          f"{result['device_name']} at {result['commit']}; written to {args.json}")
    return result


if __name__ == "__main__":
    main()
