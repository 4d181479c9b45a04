"""benchmark.py: how fast SoccerSAM's pieces run, all measured in one process on one device.

The paper sells the student as a *real-time* segmenter, so its inference speed comes first: batch-1
latency (a live broadcast arrives one frame at a time) and large-batch throughput (offline
analysis), in fp32 and channels_last on a CPU, in bf16 autocast with channels_last on a GPU. The same is
timed for torchvision's LRASPP-MobileNetV3-Large and FCN-ResNet50, the models a user would pick instead,
in the same run and in turns (one call of each model in each variant, then the next round): speeds taken
on another machine or day do not compare, and the student should be at least as fast as LRASPP, which
the table's "x LRASPP" column gives variant by variant, beside each model's GFLOP per frame and parameters.

Each model is timed as trained and in the inference copies of engineering/fast_inference.py (the same
logits): "bn-folded" (batch norms folded into the convolutions, ReLU6 in place) and "fused" (that and
Lite0's TF padding moved into its convolutions, which grows each stride-2 kernel by a row and a column),
each compiled too with --compile. LRASPP has no such padding: its two copies are one network, and their
difference is the run's noise. The "layers" rows time Lite0's five stride-2 convolutions alone, padded
copy + k x k against the grown kernel, and the fusion table at the end says, per batch and compilation,
which copy is fastest and whether it is the one `inference_copy` gives this device.

Training is the other cost: one full label-free step as train.py runs it (the SBM's classifier and eq. 2,
the student with eq. 7, the two AdamW updates), the same with the SBM fixed, the SBM's per-step part alone
to show its share, the once-per-run region embeddings (frozen backbone and eq. 1), and a supervised
cross-entropy step for comparison. Last, the mask sources that fill the cache before training:
superpixels, PiDiNet regions, and SAM ViT-B with random weights (the network costs what it costs with
real weights; the masks are meaningless, and fewer of them survive SAM's quality filters, so its
post-processing is cheaper than with real weights).

Every measurement makes `--warmup` untimed calls (cuDNN algorithm search, compilation, allocator
caches), then `--repeats` timed calls, and reports the median. On a GPU each call is timed with
CUDA events; on a CPU with time.perf_counter. Weights are random wherever they would need a
download: weights do not change speed. The JSON keys named `*_bs32_*` and `*_bs1_*` hold the
largest and smallest of `--batch-sizes` (32 and 1 unless changed; `throughput_batch_size` and
`latency_batch_size` say which), each for the fastest variant of that model (`*_variant` says which);
`student_vs_lraspp_bs32` and `_bs1` divide the student's speed by LRASPP's, each at its fastest; `fusion`
holds the fusion table.

    python studies/benchmark.py                             # GPU if there is one; 416 x 608
    # the fusion table on a GPU, about 2 minutes:
    python studies/benchmark.py --skip training masks sam --models student lraspp --batch-sizes 1 32 --compile
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
from typing import Callable, Hashable, Iterator, NamedTuple

import torch
import torchvision
from torch import nn
from torchvision.models.segmentation import fcn_resnet50

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402
from engineering.fast_inference import FOLD_PADDING, fold_same_padding, fuse_for_inference  # noqa: E402
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
    models = list(inference_models(NUM_CLASSES))
    p.add_argument("--models", nargs="+", default=models, choices=models,
                   help="models the inference section times; default all")
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


def median_ms_in_turns(calls: dict[Hashable, Callable[[], object]], device: torch.device, warmup: int,
                       repeats: int) -> dict[Hashable, float]:
    """Median milliseconds of each call, the calls taking turns (a b c, then c b a, ...): a slow spell
    of a shared machine falls on every model alike, so their ratios hold where the times do not."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[Hashable, list[float]] = {name: [] for name in names}
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


# What fuse_for_inference folds in each variant, by the name the table gives it, and whether it folds Lite0's
# padding too (a padded copy saved, a stride-2 kernel grown by one row and column).
FUSIONS = {"": None,  # the model as trained
           "bn-folded": False,  # batch norms folded into the convolutions, ReLU6 in place
           "fused": True}  # the same and Lite0's padding moved into its convolutions


class Variant(NamedTuple):
    name: str
    bf16: bool  # autocast to bfloat16 (GPU only: bf16 convolutions on a CPU are slower than fp32)
    channels_last: bool  # NHWC memory layout, the one tensor cores read directly
    fusion: str  # a key of FUSIONS: what fuse_for_inference folds; the same logits
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
# of ResNet's are in neither, so FCN has no bn-folded or fused rows.
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
    """The variants timed on `device`, eager ones first. Each fusion of FUSIONS is timed in the layout
    predict.py runs (channels_last, bf16 on a GPU), and compiled too `with_compile`."""
    if device.type == "cuda":
        # "fp32" here lets cuDNN use TF32 for convolutions, PyTorch's default.
        others = [Variant("fp32", False, False, "", False)]
        base = Variant("bf16+channels_last", True, True, "", False)
    else:
        others = [Variant("fp32", False, False, "", False),
                  Variant("fp32 fused", False, False, "fused", False)]
        base = Variant("fp32+channels_last", False, True, "", False)
    fusions = [base._replace(name=f"{base.name} {fusion}".rstrip(), fusion=fusion) for fusion in FUSIONS]
    compiled = [v._replace(name=f"{v.name}+compile", compiled=True) for v in fusions] if with_compile else []
    return others + fusions + compiled


def prepare(model: nn.Module, variant: Variant, device: torch.device, compile_mode: str) -> nn.Module:
    fold_padding = FUSIONS[variant.fusion]
    model = (copy.deepcopy(model) if fold_padding is None else fuse_for_inference(model, fold_padding)
             ).to(device).eval()
    if variant.channels_last:
        # After fusion, so that the weights fusion makes anew (the grown kernels) are channels_last too.
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


def fastest_summary(times: dict[tuple[str, str, int], float], models: list[str],
                    batch_sizes: list[int]) -> dict:
    """The JSON's `*_bs32_*` and `*_bs1_*` keys: each model at its fastest variant, at the largest and
    smallest batch, and the student's speed over LRASPP's at each."""
    throughput_batch, latency_batch = max(batch_sizes), min(batch_sizes)
    summary = dict(throughput_batch_size=throughput_batch, latency_batch_size=latency_batch)
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
    return summary


def fusion_choices(times: dict[tuple[str, str, int], float], variants: list[Variant], models: list[str],
                   batch_sizes: list[int], device: torch.device) -> list[dict]:
    """Per model that fuses, batch and compilation: the ms of each fusion of FUSIONS in predict.py's layout,
    its speed over the model as trained and run eagerly (`x_eager`, above 1 when faster), the fastest, and the
    fusion that `inference_copy` gives this device (FOLD_PADDING)."""
    chosen = "fused" if FOLD_PADDING.get(device.type, False) else "bn-folded"
    choices = []
    for name in (m for m in models if m in FUSABLE):
        for batch in batch_sizes:
            eager = next((times.get((name, v.name, batch)) for v in variants
                          if v.channels_last and not v.fusion and not v.compiled), None)
            for compiled in sorted({v.compiled for v in variants}):
                ms = {v.fusion or "as trained": times.get((name, v.name, batch)) for v in variants
                      if v.channels_last and v.compiled == compiled}
                measured = {fusion: t for fusion, t in ms.items() if t is not None}
                if not measured:
                    continue
                choices.append(dict(
                    model=name, batch=batch, compiled=compiled, ms=ms,
                    x_eager={fusion: eager / t if eager else None for fusion, t in measured.items()},
                    fastest=min(measured, key=measured.get), inference_copy=chosen,
                    inference_copy_vs_fastest=(min(measured.values()) / measured[chosen]
                                               if chosen in measured else None)))
    return choices


def strided_convolutions(student: MobileNetUNet, size: list[int]) -> list[tuple[str, nn.Conv2d, torch.Size]]:
    """Lite0's convolutions whose TF "SAME" padding `fold_same_padding` moves into a grown kernel (the stem
    and the first depthwise convolution of four stages, all stride 2), from an eval-mode copy of `student`,
    each with a name for the table and the shape (1, C, H, W) of its input at frame size `size`."""
    student = copy.deepcopy(student).eval()
    convs = {}
    for index, layer in enumerate(student.encoder.layers):
        for name, conv in layer.named_modules():
            pad = getattr(conv, "static_padding", None)
            # pad.padding is (left, right, top, bottom): one more on the right is a stride-2 convolution's
            stride_2 = isinstance(pad, nn.ZeroPad2d) and pad.padding[1] > pad.padding[0]
            if isinstance(conv, nn.Conv2d) and stride_2:
                convs[conv] = "stem" if index == 0 else f"_blocks[{index - 1}] depthwise"
    shapes = {}

    def record(conv: nn.Module, args: tuple[torch.Tensor]) -> None:  # a pre-hook that returns None
        shapes.setdefault(conv, args[0].shape)

    handles = [conv.register_forward_pre_hook(record) for conv in convs]
    with torch.no_grad():
        student(torch.zeros(1, 3, *size))
    for handle in handles:
        handle.remove()
    return [(name, conv, shapes[conv]) for conv, name in convs.items()]


def benchmark_strided_convolutions(student: MobileNetUNet, variant: Variant, batch: int,
                                   args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Each of Lite0's stride-2 convolutions alone, as shipped (a padded copy of its input, then the k x k
    kernel) and with its padding folded (a (k + 1) x (k + 1) kernel, no copy), in turns, in `variant`'s
    precision and layout: the rows say which kernel size loses where the fused model does."""
    dtype = torch.bfloat16 if variant.bf16 else torch.float32
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    rows = []
    for name, conv, shape in strided_convolutions(student, args.size):
        shipped = copy.deepcopy(conv).to(device, dtype).to(memory_format=layout)
        folded = fold_same_padding(copy.deepcopy(conv)).to(device, dtype).to(memory_format=layout)
        x = torch.rand(batch, *shape[1:], device=device, dtype=dtype).contiguous(memory_format=layout)
        with torch.inference_mode():
            calls = {"shipped": lambda: shipped(x), "folded": lambda: folded(x)}
            measured = median_ms_in_turns(calls, device, args.warmup, args.repeats)
        k, (c, h, w) = conv.kernel_size[0], shape[1:]
        what = f"Lite0 {name}: {k}x{k} stride 2, {c} to {conv.out_channels} channels, input {h} x {w}"
        rows.append(row("layers", what, f"{variant.name}: padded copy + {k}x{k}", batch, measured["shipped"]))
        speed = measured["shipped"] / measured["folded"]
        rows.append(row("layers", what, f"{variant.name}: {k + 1}x{k + 1}, padding folded", batch,
                        measured["folded"], f"{speed:.2f}x the padded copy's speed"))
    return rows


def benchmark_inference(args: argparse.Namespace, device: torch.device,
                        save: Callable[[list[dict], dict], None] = lambda rows, summary: None
                        ) -> tuple[list[dict], dict]:
    """The inference rows and keys; `save(rows, summary)` after each batch size of the eager and of the
    compiled variants, so that a run cut short keeps what it measured."""
    rows, times, summary = [], {}, {}
    builders = inference_models(NUM_CLASSES)
    models = {name: builders[name]() for name in args.models}
    for name, model in models.items():
        cost = dict(gflops=gflops_per_image(model, args.size),
                    parameters=sum(p.numel() for p in model.parameters()))
        summary.update({f"{name}_description": describe(model),
                        **{f"{name}_{k}": v for k, v in cost.items()}})
    variants = inference_variants(device, args.compile)
    if "student" in models:
        layout = next(v for v in variants if v.channels_last)
        rows += benchmark_strided_convolutions(models["student"], layout, max(args.batch_sizes), args, device)
    # Every model in every variant in turns, the eager variants first, then the compiled ones: a slow spell
    # of the machine falls on all alike, so the fusions compare as well as the models. torch.compile keeps 8
    # graphs of one forward unless told more: each compiled fusion makes one per batch size.
    limit = 2 * len(FUSIONS) * len(args.batch_sizes)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    for compiled in sorted({v.compiled for v in variants}):
        prepared = {(name, variant): prepare(model, variant, device, args.compile_mode)
                    for variant in variants if variant.compiled == compiled
                    for name, model in models.items() if name in FUSABLE or not variant.fusion}
        for batch in sorted(args.batch_sizes, reverse=True):  # throughput first: it decides the fusion
            calls, notes = {}, {}
            for (name, variant), model in prepared.items():
                try:
                    calls[name, variant] = inference_call(model, variant, batch, args.size, device)
                    # The first call compiles (compiled variants) and finds cuDNN algorithms: timed apart.
                    first_s = time_call_ms(calls[name, variant], device) / 1e3
                    notes[name, variant] = f"first call {first_s:.1f} s" if variant.compiled else ""
                except Exception as error:  # a compile or memory failure must not end the benchmark
                    calls.pop((name, variant), None)
                    notes[name, variant] = failure(error)
            measured = median_ms_in_turns(calls, device, args.warmup, args.repeats)
            for name, variant in prepared:
                ms = measured.get((name, variant))
                if ms is not None:
                    times[name, variant.name, batch] = ms
                lraspp = measured.get(("lraspp", variant))
                rows.append(row("inference", name, variant.name, batch, ms, notes[name, variant],
                                gflops=summary[f"{name}_gflops"], parameters=summary[f"{name}_parameters"],
                                vs_lraspp=lraspp / ms if ms and lraspp else None))
            summary.update(fastest_summary(times, list(models), args.batch_sizes),
                           fusion=fusion_choices(times, variants, list(models), args.batch_sizes, device))
            save(rows, summary)
        del prepared, calls
        torch._dynamo.reset()  # frees the compiled graphs and CUDA graph memory pools
        if device.type == "cuda":
            torch.cuda.empty_cache()
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
    # Each frame's eq. 5 generator, as train.py's loop makes them.
    augmentation = train.augmentation_generators(0, 0, [f"frame {i}" for i in range(len(images))])
    in_host = {"image": images, "masks": cached_masks, "embeddings": embeddings, "augmentation": augmentation}
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


def print_fusion_table(choices: list[dict], device: torch.device) -> None:
    """The inference rows again, by fusion, for the choice `inference_copy` makes on this device."""
    if not choices:
        return
    fusions = ["as trained", *(f for f in FUSIONS if f)]
    chosen = choices[0]["inference_copy"]
    print(f"\nFusion on {device.type}, in predict.py's layout: ms (speed over the model as trained, eager; "
          f"above 1 = faster). inference_copy gives this device `{chosen}` (fast_inference.FOLD_PADDING).")
    print(f"| model | batch | compiled | {' | '.join(fusions)} | fastest | `{chosen}` / fastest |")
    print("|---|---:|---|" + "---:|" * len(fusions) + "---|---:|")
    for c in choices:
        cells = ["-" if c["ms"].get(f) is None else f"{c['ms'][f]:.2f} ({c['x_eager'][f]:.2f}x)"
                 if c["x_eager"].get(f) else f"{c['ms'][f]:.2f}" for f in fusions]
        ratio = c["inference_copy_vs_fastest"]
        print(f"| {c['model']} | {c['batch']} | {'yes' if c['compiled'] else 'no'} | {' | '.join(cells)} "
              f"| {c['fastest']} | {'-' if ratio is None else f'{ratio:.2f}'} |")


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
        def save(section_rows: list[dict], summary: dict) -> None:
            results.update(summary, rows=rows + section_rows)
            write_json(args.out, results)

        # Written after every section (and inference variant), so a run cut short keeps what it measured.
        section_rows, summary = run(args, device, save) if run is benchmark_inference else run(args, device)
        rows += section_rows
        save([], summary)

    print(f"\n{results['device_name']} ({args.device}), torch {torch.__version__}, "
          f"{args.size[0]} x {args.size[1]}, median of {args.repeats} after {args.warmup} warm-up calls")
    print_table(rows)
    print_fusion_table(results.get("fusion", []), device)
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
