"""benchmark.py: how fast SoccerSAM's pieces run, all measured in one process on one device.

The paper sells the student as a *real-time* segmenter, so its inference speed comes first: batch-1
latency (a live broadcast arrives one frame at a time) and large-batch throughput (offline
analysis), in fp32 and channels_last on a CPU, in bf16 autocast with channels_last and under
torch.compile on a GPU, each as shipped and fused for inference (engineering/fast_inference.py: batch norms
folded into the convolutions, the same logits). The same is timed for torchvision's
LRASPP-MobileNetV3-Large and FCN-ResNet50, the models a user would pick instead, in the same run and
in turns (one call of each, then the next round): speeds taken on another machine or day do not compare, and the student should be at
least as fast as LRASPP, which the table's "x LRASPP" column gives variant by variant, beside each
model's GFLOP per frame and parameters. Training is the other cost: one full label-free step
as train.py runs it (the SBM's classifier and eq. 2, the student with eq. 7, the two AdamW updates), the
same with the SBM fixed, the SBM's per-step part alone to show its share, the once-per-run region
embeddings (frozen backbone and eq. 1), and a supervised cross-entropy step for comparison. Last, the
mask sources that fill the cache before training: superpixels, PiDiNet regions, and SAM ViT-B with
random weights (the network costs what it costs with real weights; the masks are meaningless, and
fewer of them survive SAM's quality filters, so its post-processing is cheaper than with real weights).

Every measurement makes `--warmup` untimed calls (cuDNN algorithm search, compilation, allocator
caches), then `--repeats` timed calls, and reports the median. On a GPU each call is timed with
CUDA events; on a CPU with time.perf_counter. Weights are random wherever they would need a
download: weights do not change speed. The JSON keys named `*_bs32_*` and `*_bs1_*` hold the
largest and smallest of `--batch-sizes` (32 and 1 unless changed; `throughput_batch_size` and
`latency_batch_size` say which), each for the fastest variant of that model (`*_variant` says which);
`student_vs_lraspp_bs32` and `_bs1` divide the student's speed by LRASPP's, each at its fastest.

    python studies/benchmark.py                             # GPU if there is one; 416 x 608
    python studies/benchmark.py --device cpu --skip training masks sam   # the CPU ratio at batch 1
    python studies/benchmark.py --quick --device cpu        # CI-sized smoke run
    python studies/benchmark.py --profile --skip inference masks   # where a training step's time goes
"""
import argparse
import contextlib
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import torch
import torchvision
from torch import nn
from torchvision.models.segmentation import fcn_resnet50

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402
from engineering.fast_inference import fuse_for_inference  # noqa: E402
from engineering.files import write_atomically  # noqa: E402
from engineering.lraspp import LRASPPBaseline  # noqa: E402
from classes import NUM_CLASSES  # noqa: E402
from mask_set import MaskSet  # noqa: E402
from models import build_sbm  # noqa: E402
from sam_teacher import SamTeacher, build_cache  # noqa: E402
from stand_ins.regions import BoundaryTeacher, SuperpixelTeacher  # noqa: E402
from stand_ins.synthetic import SyntheticScenes, make_scene  # noqa: E402
from student import MobileNetUNet  # noqa: E402

SECTIONS = ("inference", "training", "masks", "sam")
# Defaults that depend on the run: a full GPU run, a (slow) full CPU run, and --quick for CI.
PRESETS = {
    "cuda": dict(size=[416, 608], batch_sizes=[1, 32], repeats=20, warmup=5, train_batch=8, mask_frames=5,
                 sam_points=32),
    # On a CPU the live case, batch 1, and enough turns for a ratio that holds on a shared machine.
    "cpu": dict(size=[416, 608], batch_sizes=[1], repeats=15, warmup=3, train_batch=8, mask_frames=2,
                sam_points=8),
    "quick": dict(size=[64, 96], batch_sizes=[1, 2], repeats=3, warmup=1, train_batch=2, mask_frames=1,
                  sam_points=4),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="frame size; default 416 608 (64 96 with --quick)")
    p.add_argument("--batch-sizes", type=int, nargs="+",
                   help="inference batch sizes; default 1 32 on GPU, 1 on CPU (1 2 with --quick)")
    p.add_argument("--repeats", type=int, help="timed calls per measurement; default 20 on GPU, 15 on CPU")
    p.add_argument("--warmup", type=int, help="untimed calls first; default 5 on GPU, 3 on CPU")
    p.add_argument("--train-batch", type=int,
                   help="frames per training step; default 8 (train.py's), 2 with --quick")
    p.add_argument("--mask-frames", type=int,
                   help="frames timed per mask source; default 5 on GPU, 2 on CPU, 1 with --quick")
    p.add_argument("--sam-points", type=int,
                   help="SAM's points_per_side; default 32 on GPU, 8 on CPU, 4 with --quick")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="also time torch.compile'd models; default on for GPU, off for CPU")
    p.add_argument("--compile-mode", default="reduce-overhead",
                   choices=["reduce-overhead", "max-autotune-no-cudagraphs", "default"],
                   help="reduce-overhead adds CUDA graphs, which matter most at batch 1")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats, for CI")
    p.add_argument("--skip", nargs="+", default=[], choices=SECTIONS, help="sections not to run")
    p.add_argument("--profile", action="store_true",
                   help="also profile one training step and print its top-15 ops")
    p.add_argument("--out", default="results/benchmark.json", help="JSON file for the results")
    args = p.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "cuda" if args.device.startswith("cuda") else "cpu"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.compile is None:
        args.compile = args.device.startswith("cuda")
    return args


# ----------------------------------------------------------------------------------------------
# Timing: one call, and the median of many.

class Stopwatch:
    """Milliseconds from construction to `stop()`: CUDA events on a GPU, so the time is that of the
    GPU work queued in between; time.perf_counter on a CPU, where work is done when the call returns."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.start = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            self.end.record()
        else:
            self.end = time.perf_counter()

    def ms(self) -> float:
        if self.cuda:
            self.end.synchronize()
            return self.start.elapsed_time(self.end)
        return (self.end - self.start) * 1e3


def time_call_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call of fn, waiting for its GPU work to finish."""
    watch = Stopwatch(device)
    fn()
    watch.stop()
    return watch.ms()


def median_ms_in_turns(calls: dict[str, Callable[[], object]], device: torch.device, warmup: int,
                       repeats: int) -> dict[str, float]:
    """Median milliseconds of each call, the calls taking turns (a b c, then c b a, ...): a slow spell
    of a shared machine falls on every model alike, so their ratios hold where the times do not."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(repeats):
        for name in names if turn % 2 == 0 else names[::-1]:
            times[name].append(time_call_ms(calls[name], device))
    return {name: statistics.median(t) for name, t in times.items()}


def median_ms(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    return median_ms_in_turns({"call": fn}, device, warmup, repeats)["call"]


@contextlib.contextmanager
def timed_calls(module: nn.Module, device: torch.device) -> Iterator[list[float]]:
    """Milliseconds of every forward call of `module` made inside the block, through hooks, so a
    submodule (SAM's image encoder inside the mask generator) is timed without an extra run.
    The list fills in when the block ends."""
    watches: list[Stopwatch] = []
    handles = [module.register_forward_pre_hook(lambda *_: watches.append(Stopwatch(device))),
               module.register_forward_hook(lambda *_: watches[-1].stop())]
    times: list[float] = []
    try:
        yield times
    finally:
        for handle in handles:
            handle.remove()
        times.extend(watch.ms() for watch in watches)


def row(section: str, what: str, variant: str, batch: int | None, ms: float | None, note: str = "",
        gflops: float | None = None, parameters: int | None = None, vs_lraspp: float | None = None) -> dict:
    """One line of the table: `img_per_s` is batch images per `ms` (None where it means nothing);
    inference rows add the model's GFLOP per image, its parameters and its speed over LRASPP's in the
    same variant and batch (`vs_lraspp`, above 1 when faster)."""
    img_per_s = batch * 1e3 / ms if ms and batch else None
    print(f"  {section:<10} {what} [{variant}] batch {batch or '-'}: "
          f"{'-' if ms is None else f'{ms:.2f} ms'} {note}", file=sys.stderr, flush=True)
    return dict(section=section, what=what, variant=variant, batch=batch, ms=ms, img_per_s=img_per_s,
                gflops=gflops, parameters=parameters, vs_lraspp=vs_lraspp, note=note)


def failure(error: Exception) -> str:
    """A table note for a measurement that raised, e.g. a model torch.compile could not compile."""
    lines = str(error).strip().splitlines()
    return f"failed: {type(error).__name__}" + (f": {lines[0][:160]}" if lines else "")


# ----------------------------------------------------------------------------------------------
# 1-2. Inference: the student against torchvision's LRASPP and FCN, in every precision variant.

class OutputOnly(nn.Module):
    """torchvision's FCN returns {"out": logits, ...}: keep the logits (B, C, H, W)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class Variant(NamedTuple):
    name: str
    bf16: bool  # autocast to bfloat16 (GPU only: bf16 convolutions on a CPU are slower than fp32)
    channels_last: bool  # NHWC memory layout, the one tensor cores read directly
    fused: bool  # fuse_for_inference: batch norms folded into the convolutions, same logits
    compiled: bool


def inference_models(num_classes: int) -> dict[str, Callable[[], nn.Module]]:
    """Builders of the models timed against each other, the student first and LRASPP, the reference
    of the "x LRASPP" column, second."""
    return {
        "student": lambda: MobileNetUNet(num_outputs=num_classes),
        # the one `train.py --student lraspp` trains
        "lraspp": lambda: LRASPPBaseline(num_outputs=num_classes),
        "fcn": lambda: OutputOnly(fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes,
                                               aux_loss=False)),
    }


# fuse_for_inference folds the batch norms it finds in an nn.Sequential or an EfficientNet block; most
# of ResNet's are in neither, so FCN has no fused rows.
FUSABLE = {"student", "lraspp"}


def describe(model: nn.Module) -> str:
    if isinstance(model, (MobileNetUNet, LRASPPBaseline)):
        return model.describe()
    return (f"torchvision FCN-ResNet50, random weights: "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")


def gflops_per_image(model: nn.Module, size: list[int]) -> float:
    """Floating-point operations of one forward pass on one (3, H, W) frame, in billions (a multiply-add
    counts two), counted by torch.utils.flop_counter on a weightless copy on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        copy.deepcopy(model).eval().to("meta")(torch.empty(1, 3, *size, device="meta"))
    return counter.get_total_flops() / 1e9


def inference_variants(device: torch.device, with_compile: bool) -> list[Variant]:
    if device.type == "cuda":
        # "fp32" here lets cuDNN use TF32 for convolutions, PyTorch's default.
        variants = [Variant("fp32", False, False, False, False),
                    Variant("bf16+channels_last", True, True, False, False),
                    Variant("bf16+channels_last fused", True, True, True, False)]
    else:
        variants = [Variant("fp32", False, False, False, False),
                    Variant("fp32 fused", False, False, True, False),
                    Variant("fp32+channels_last", False, True, False, False),
                    Variant("fp32+channels_last fused", False, True, True, False)]
    if with_compile:
        best = variants[-1]
        variants.append(best._replace(name=f"{best.name}+compile", compiled=True))
    return variants


def prepare(model: nn.Module, variant: Variant, device: torch.device, compile_mode: str) -> nn.Module:
    model = (fuse_for_inference(model) if variant.fused else copy.deepcopy(model)).to(device).eval()
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if variant.compiled:
        # dynamic=False: one specialised graph per batch size, as a deployed model would have.
        model = torch.compile(model, mode=compile_mode, dynamic=False)
    return model


def inference_call(model: nn.Module, variant: Variant, batch: int, size: list[int],
                   device: torch.device) -> Callable[[], None]:
    x = torch.rand(batch, 3, *size, device=device)
    if variant.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            model(x)
    return run


def fastest(times: dict[tuple[str, str, int], float], model: str, batch: int) -> tuple[str, float] | None:
    """(variant, ms) of the fastest variant of `model` at `batch`, None if all failed."""
    found = [(ms, variant) for (m, variant, b), ms in times.items() if m == model and b == batch]
    return (min(found)[1], min(found)[0]) if found else None


def benchmark_inference(args: argparse.Namespace, device: torch.device) -> tuple[list[dict], dict]:
    rows, times, summary = [], {}, {}
    models = {name: build() for name, build in inference_models(NUM_CLASSES).items()}
    for name, model in models.items():
        cost = dict(gflops=gflops_per_image(model, args.size),
                    parameters=sum(p.numel() for p in model.parameters()))
        summary.update({f"{name}_description": describe(model),
                        **{f"{name}_{k}": v for k, v in cost.items()}})
    for variant in inference_variants(device, args.compile):
        prepared = {name: prepare(model, variant, device, args.compile_mode) for name, model in models.items()
                    if name in FUSABLE or not variant.fused}
        for batch in args.batch_sizes:
            calls, notes = {}, {}
            for name, model in prepared.items():
                try:
                    calls[name] = inference_call(model, variant, batch, args.size, device)
                    # The first call compiles (compiled variants) and finds cuDNN algorithms: timed apart.
                    first_s = time_call_ms(calls[name], device) / 1e3
                    notes[name] = f"first call {first_s:.1f} s" if variant.compiled else ""
                except Exception as error:  # a compile or memory failure must not end the benchmark
                    calls.pop(name, None)
                    notes[name] = failure(error)
            measured = median_ms_in_turns(calls, device, args.warmup, args.repeats)
            for name in prepared:
                ms = measured.get(name)
                if ms is not None:
                    times[name, variant.name, batch] = ms
                vs_lraspp = measured["lraspp"] / ms if ms and "lraspp" in measured else None
                rows.append(row("inference", name, variant.name, batch, ms, notes[name],
                                gflops=summary[f"{name}_gflops"], parameters=summary[f"{name}_parameters"],
                                vs_lraspp=vs_lraspp))
        del prepared, calls
        if variant.compiled:
            torch._dynamo.reset()  # frees the compiled graphs and CUDA graph memory pools
        if device.type == "cuda":
            torch.cuda.empty_cache()
    throughput_batch, latency_batch = max(args.batch_sizes), min(args.batch_sizes)
    summary.update(throughput_batch_size=throughput_batch, latency_batch_size=latency_batch)
    for name in models:
        if best := fastest(times, name, throughput_batch):
            summary[f"{name}_bs32_variant"] = best[0]
            summary[f"{name}_bs32_img_per_s"] = throughput_batch * 1e3 / best[1]
        if best := fastest(times, name, latency_batch):
            summary[f"{name}_bs1_variant"] = best[0]
            summary[f"{name}_bs1_latency_ms"] = best[1]
    # Each model at its fastest variant (the table's "x LRASPP" column compares them variant by variant).
    if "student_bs32_img_per_s" in summary and "lraspp_bs32_img_per_s" in summary:
        summary["student_vs_lraspp_bs32"] = (summary["student_bs32_img_per_s"]
                                             / summary["lraspp_bs32_img_per_s"])
    if "student_bs1_latency_ms" in summary and "lraspp_bs1_latency_ms" in summary:
        summary["student_vs_lraspp_bs1"] = (summary["lraspp_bs1_latency_ms"]
                                            / summary["student_bs1_latency_ms"])
    return rows, summary


# ----------------------------------------------------------------------------------------------
# 3. Training: train.py's label-free step, its SBM parts alone, and the supervised step.

def cached_frames(size: list[int], count: int, cache_dir: str) -> tuple[torch.Tensor, list[MaskSet]]:
    """`count` synthetic frames (B, 3, H, W) in [0, 1] and their superpixel masks, as the mask cache
    holds them. The teacher runs here, once, before any timing: training reads the cache and
    never calls the teacher, so neither does the timed step. Superpixels, not PiDiNet regions: ten times
    as many masks a frame, so eqs. 1-2 are timed at their most expensive."""
    frames = SyntheticScenes(count, size=tuple(size), seed=0)
    cache = build_cache(frames, SuperpixelTeacher(), cache_dir, progress=False)
    images = torch.stack([frames[i]["image"] for i in range(count)])
    return images, [cache.load(name) for name in frames.names]


def timed_training_step(batch: dict, student: nn.Module, sbm: nn.Module | None,
                        optimizers: list[torch.optim.Optimizer], train_args: argparse.Namespace,
                        device: torch.device) -> Callable[[], None]:
    """train.py's `training_step` on a batch in host memory, as train.py's loop runs it.

    Copying the batch and the masks to the device are in it, as in training; reading
    the cache files from disk is not (the data loader does that beside the step).
    """
    def step() -> None:
        parts = train.training_step(batch, student, sbm, optimizers, train_args, device)
        for value in parts.values():
            value.item()  # train.py reads every loss for its log, a host-device sync each
    return step


def print_profile(step: Callable[[], None], device: torch.device, rows: int = 15) -> None:
    """torch.profiler over one step: the ops that take the most time of their own."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\nOne training step, top {rows} ops by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=rows))


def benchmark_training(args: argparse.Namespace, device: torch.device) -> tuple[list[dict], dict]:
    train_args = train.parse_args([])  # train.py's defaults: eq. 7 weights, clusters, encoders, SBM lr
    cuda, batch = device.type == "cuda", args.train_batch
    # What train.py builds: the student (channels_last on a GPU), the SBM, and an AdamW for each.
    student = MobileNetUNet(num_outputs=train_args.clusters, encoder=train_args.encoder).to(device).train()
    if cuda:
        student = student.to(memory_format=torch.channels_last)
    sbm = build_sbm(train_args.clusters, train_args.sbm_backbone).to(device)
    optimizers = [torch.optim.AdamW(student.parameters(), lr=train_args.lr, **train.ADAMW),
                  torch.optim.AdamW([sbm.prototypes], lr=train_args.sbm_lr, **train.ADAMW)]

    with tempfile.TemporaryDirectory() as cache_dir:
        images, cached_masks = cached_frames(args.size, batch, cache_dir)
    if cuda:  # the data loader pins memory on a GPU run (pin_memory=True), so copies are asynchronous
        images, cached_masks = images.pin_memory(), [m.pin_memory() for m in cached_masks]
    masks, on_device = [m.to(device) for m in cached_masks], images.to(device)

    def region_embeddings() -> list[torch.Tensor]:  # as train.region_embeddings: once per run, frame by frame
        return [sbm.region_embeddings(image[None], [m])[0] for image, m in zip(on_device, masks)]

    embeddings = region_embeddings()
    masks_per_frame = statistics.mean(len(m) for m in cached_masks)
    variant, note = ("bf16 autocast" if cuda else "fp32"), f"{masks_per_frame:.0f} superpixel masks per frame"
    in_host = {"image": images, "masks": cached_masks, "embeddings": embeddings}
    rows, summary = [], dict(train_batch_size=batch, train_variant=variant,
                             train_masks_per_frame=masks_per_frame)
    for what, key, trained in (("label-free step, two AdamW (eq. 7; the SBM's classifier and eq. 2)", "train",
                                optimizers), ("label-free step, SBM fixed (--sbm-lr 0)", "train_sbm_fixed",
                                              optimizers[:1])):
        sbm.prototypes.requires_grad_(len(trained) == 2)
        ms = median_ms(timed_training_step(in_host, student, sbm, trained, train_args, device), device,
                       args.warmup, args.repeats)
        rows.append(row("training", what, variant, batch, ms, note))
        summary.update({f"{key}_step_ms": ms, f"{key}_img_per_s": batch * 1e3 / ms})
    sbm.prototypes.requires_grad_(True)

    def sbm_per_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            sbm.pseudo_logits(embeddings, masks)

    ms = median_ms(sbm_per_step, device, args.warmup, args.repeats)
    rows.append(row("training", "SBM per step: classifier and eq. 2 (forward)", variant, None, ms,
                    f"{100 * ms / summary['train_step_ms']:.1f}% of the two-AdamW step (batch {batch})"))
    summary.update(sbm_step_ms=ms, sbm_step_fraction=ms / summary["train_step_ms"])
    ms = median_ms(region_embeddings, device, args.warmup, args.repeats)
    rows.append(row("training", "SBM once per run: frozen backbone and eq. 1, frame by frame", "fp32", batch,
                    ms, "once per run, not per step"))
    summary.update(region_embeddings_ms=ms)

    labels = torch.randint(0, NUM_CLASSES, (batch, *args.size))
    if cuda:
        labels = labels.pin_memory()
    supervised = timed_training_step({"image": images, "label": labels}, student, None, optimizers[:1],
                                     train.parse_args(["--supervised"]), device)
    ms = median_ms(supervised, device, args.warmup, args.repeats)
    rows.append(row("training", "supervised step (cross-entropy, AdamW)", variant, batch, ms,
                    "random labels"))
    summary.update(supervised_step_ms=ms, supervised_img_per_s=batch * 1e3 / ms)
    if args.profile:
        print_profile(timed_training_step(in_host, student, sbm, optimizers, train_args, device), device)
    return rows, summary


# ----------------------------------------------------------------------------------------------
# 4. Mask sources: frames per second of the teachers that fill the cache.

def time_teacher(teacher: Callable, frames: list, warmup: int, device: torch.device) -> tuple[float, float]:
    """(median ms per frame, mean masks per frame) over frames[warmup:]; frames: (H, W, 3) uint8."""
    for frame in frames[:warmup]:
        teacher(frame)
    times, counts = [], []
    for frame in frames[warmup:]:
        watch = Stopwatch(device)
        counts.append(len(teacher(frame)))
        watch.stop()
        times.append(watch.ms())
    return statistics.median(times), statistics.mean(counts)


def benchmark_mask_sources(args: argparse.Namespace, device: torch.device) -> tuple[list[dict], dict]:
    # At most one warm-up frame: on a CPU one SAM frame takes tens of seconds.
    warmup = min(args.warmup, 1)
    frames = [make_scene(1000 + i, tuple(args.size))[0] for i in range(warmup + args.mask_frames)]
    rows, summary = [], {}
    if "masks" not in args.skip:
        ms, count = time_teacher(SuperpixelTeacher(), frames, warmup,
                                 torch.device("cpu"))  # scikit-image: CPU only
        rows.append(row("masks", "superpixel (felzenszwalb, CPU)", "numpy", 1, ms,
                        f"{count:.0f} masks per frame"))
        summary.update(superpixel_ms_per_frame=ms, superpixel_fps=1e3 / ms, superpixel_masks_per_frame=count)
        teacher = BoundaryTeacher(device=str(device))
        ms, count = time_teacher(teacher, frames, warmup, device)
        rows.append(row("masks", f"boundary (PiDiNet on {device.type}, regions on the CPU)", "fp32", 1, ms,
                        f"{count:.0f} masks per frame"))
        summary.update(boundary_ms_per_frame=ms, boundary_fps=1e3 / ms, boundary_masks_per_frame=count)
    if "sam" not in args.skip:
        teacher = SamTeacher(random_weights=True, device=str(device), points_per_side=args.sam_points)
        with timed_calls(teacher.model.image_encoder, device) as encoder_ms:
            ms, count = time_teacher(teacher, frames, warmup, device)
        # SamTeacher runs no crops, so the encoder runs once per frame: drop the warm-up frames' calls.
        encoder = statistics.median(encoder_ms[warmup:])
        note = "RANDOM WEIGHTS, timing only"
        rows.append(row("masks", f"SAM ViT-B automatic masks, {args.sam_points}x{args.sam_points} points",
                        "fp32", 1, ms, f"{note}; {count:.0f} masks per frame survive the filters"))
        rows.append(row("masks", "SAM ViT-B image encoder alone, 1024 x 1024", "fp32", 1, encoder, note))
        summary.update(sam_vit_b_ms_per_frame=ms, sam_vit_b_fps=1e3 / ms, sam_vit_b_encoder_ms=encoder,
                       sam_vit_b_points_per_side=args.sam_points, sam_vit_b_weights="random (timing only)")
    rows.append(row("masks", "oracle", "-", None, None, "skipped: it reads the labels"))
    return rows, summary


# ----------------------------------------------------------------------------------------------
# Output: a table on stdout, and the JSON file.

def print_table(rows: list[dict]) -> None:
    def number(x: float | None) -> str:
        return "-" if x is None else f"{x:,.1f}" if x >= 10 else f"{x:.2f}"

    print("| section | what | variant | batch | ms (median) | img/s | x LRASPP | GFLOP/img | params (M) "
          "| note |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        parameters = None if r.get("parameters") is None else r["parameters"] / 1e6
        print(f"| {r['section']} | {r['what']} | {r['variant']} | {r['batch'] or '-'} | {number(r['ms'])} "
              f"| {number(r['img_per_s'])} | {number(r.get('vs_lraspp'))} | {number(r.get('gflops'))} "
              f"| {number(parameters)} | {r['note']} |")


def write_json(path: str, results: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (json.dumps(results, indent=2) + "\n").encode())


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(args: argparse.Namespace, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return dict(
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if cuda else cpu_name(),
        cpu_threads=torch.get_num_threads(), torch_version=torch.__version__,
        torchvision_version=torchvision.__version__, size=args.size, batch_sizes=args.batch_sizes,
        repeats=args.repeats, warmup=args.warmup, quick=args.quick,
        compile=args.compile, compile_mode=args.compile_mode if args.compile else None,
        cudnn_benchmark=cuda, timer="CUDA events" if cuda else "time.perf_counter")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        # Let cuDNN pick the fastest algorithm for each shape (during the warm-up), as any speed
        # reference does.
        torch.backends.cudnn.benchmark = True
    results, rows = environment(args, device), []
    runs = [run for section, run in (("inference", benchmark_inference), ("training", benchmark_training))
            if section not in args.skip]
    if not {"masks", "sam"} <= set(args.skip):
        runs.append(benchmark_mask_sources)
    for run in runs:
        section_rows, summary = run(args, device)
        rows += section_rows
        results.update(summary, rows=rows)
        # Written after every section, so a run cut short keeps what it measured.
        write_json(args.out, results)

    print(f"\n{results['device_name']} ({args.device}), torch {torch.__version__}, "
          f"{args.size[0]} x {args.size[1]}, median of {args.repeats} after {args.warmup} warm-up calls")
    print_table(rows)
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
