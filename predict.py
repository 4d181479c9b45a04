"""predict.py: segment new footage with a trained student, the real-time model SoccerSAM ships.

Paper: Chen Zhang, Wan Ahmad Munsif Wan Pa and Nur Shakila Mazalan (Universiti Kebangsaan Malaysia, 2025),
"SoccerSAM: Leveraging Segment Anything Model for Unlabeled Semantic Segmentation of Football Match Scenes".

    python3 predict.py --checkpoint RUN/checkpoint.pt --input FOLDER_OR_VIDEO --out DIR [--overlay]

Each frame (a folder of .jpg/.png frames of any size, or a video file read as a stream with PyAV) is
brought to the run's training size, segmented by the student in batches (channels_last; bf16 on a GPU or
a CPU with native bf16; `--compile` optionally) and its argmax taken at that size. Masks are palettised
PNGs (mode P, as Pascal VOC's masks: a pixel's value is its id), resized to the frame's own size by
nearest neighbour and named after the frame (`frame_000123.png` for a video). The values are FSSOD class
ids where the run's clusters have names (the strict mapping evaluate.py fitted on the run's training
frames and stored in its results.json), cluster ids otherwise. The palette inside the PNGs, `legend.png`
and the overlays are for display only: figures.py's distinguishable colours, not FSSOD's own (which make
Team A and Goalkeeper A the same yellow). `--overlay` adds each frame with its mask blended over it: JPEGs
in `overlays/` for a folder, one `overlay.mp4` for a video (written only by a run that sees every frame,
so not by a `--resume` that skips some).

Decoding (worker processes: JPEGs at reduced scale with PIL's draft mode; or the GPU, with nvJPEG on a
stream of its own, beside the student's), the student, and PNG encoding (worker processes) run side by side;
the last line says how long the main loop waited for each, so which one sets the pace, and how many frames
were skipped as unreadable. The overlay video is blended on the device and encoded on every core (libx264's
frame threads). The clock starts after the warm-up (compilation included) and the workers' start. Ctrl-C
stops within a second or two, keeping every mask already written.
"""
import argparse
import io
import multiprocessing
import os
import shlex
import signal
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from tqdm import tqdm

from classes import CLASS_NAMES
from engineering.fast_inference import inference_copy
from engineering.files import report_user_errors, write_atomically
from figures import DISPLAY_PALETTE, cluster_palette
from models import load_checkpoint, trained_student

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
OVERLAYS, OVERLAY_VIDEO = "overlays", "overlay.mp4"


def decode_image(file, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image file (path or file object) -> ((H, W, 3) uint8 at the run's size=(H, W), the frame's own
    (H, W)).

    A JPEG is decoded at the smallest of 1/2, 1/4, 1/8 scale that still covers `size` (libjpeg's DCT
    scaling, PIL's draft mode): a 1080p frame for 416 x 608 decodes in half the time. Then data.py's
    bilinear resize. Deviation: the training frames were decoded at full scale; the two inputs differ by
    about 2 grey levels on average."""
    with Image.open(file) as opened:
        frame_size = (opened.height, opened.width)
        opened.draft("RGB", (size[1], size[0]))  # a no-op for PNGs
        rgb = opened.convert("RGB").resize((size[1], size[0]), resample=Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).copy()), frame_size


class FolderFrames(Dataset):
    """The frames of a folder, in name order: decoded (`image`), or as the file's bytes (`jpeg`) for the
    device to decode; an unreadable one comes back with its `error`."""

    def __init__(self, folder: Path, names: list[str], size: tuple[int, int], jpeg_bytes: bool):
        self.folder, self.names, self.size, self.jpeg_bytes = folder, names, size, jpeg_bytes

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        item = {"name": name, "mask_name": Path(name).stem + ".png"}
        try:
            if self.jpeg_bytes:
                data = (self.folder / name).read_bytes()
                return {**item, "jpeg": torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())}
            image, frame_size = decode_image(self.folder / name, self.size)
        except (OSError, SyntaxError) as error:
            return {**item, "error": f"cannot read this image ({error})"}
        return {**item, "image": image, "frame_size": frame_size}


class VideoFrames(IterableDataset):
    """A video's frames in order, decoded as a stream (one worker process, several decoding threads):
    memory does not grow with the video's length. `skip` names the masks already written, whose frames are
    decoded but not served; with `overlay` each frame also comes at its own size as the encoder takes it
    (`frame`: yuv420p planes, see `blend_yuv420`), with no conversion to RGB and back."""

    def __init__(self, path: Path, size: tuple[int, int], overlay: bool, skip: set[str]):
        import av

        self.path, self.size, self.overlay, self.skip = path, size, overlay, skip
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                # 25: PAL's, if unsaid
                self.frames, self.rate = stream.frames or None, stream.average_rate or 25
                self.frame_size = (stream.codec_context.height, stream.codec_context.width)
        except (av.FFmpegError, IndexError) as error:
            raise ValueError(f"--input {path}: cannot read it as a video ({error}); pass a folder of "
                             ".jpg/.png frames or a video file") from None

    def __iter__(self):
        import av

        if (get_worker_info() or argparse.Namespace(id=0)).id:
            return  # a second worker would decode the same stream again
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                name = f"frame_{index:06d}.png"
                if name in self.skip:
                    continue
                # One swscale pass converts to RGB and resizes (bilinear), as PIL does for a folder's frames.
                small = frame.reformat(width=self.size[1], height=self.size[0], format="rgb24").to_ndarray()
                item = {"name": name, "mask_name": name, "image": torch.from_numpy(small),
                        "frame_size": (frame.height, frame.width)}
                if self.overlay:
                    # 4:2:0 chroma needs even sides: an odd one is scaled to the even size below it.
                    even = frame.reformat(width=frame.width // 2 * 2, height=frame.height // 2 * 2,
                                          format="yuv420p")
                    item["frame"] = torch.from_numpy(even.to_ndarray())
                yield item


def collate(items: list[dict]) -> dict:
    """Readable frames stack into a batch (`image` (B, H, W, 3) uint8 and a video's `frame` (B, 3H/2, W)
    uint8; or their `jpeg` bytes end to end in one uint8 tensor, with each file's length in `jpeg_sizes`);
    the unreadable ones ride along as (name, error) pairs. One tensor, not one per file: a worker hands each
    tensor to the main process in a shared-memory segment of its own, and 32 segments a batch reach it more
    slowly than one."""
    good = [it for it in items if "error" not in it]
    batch = {key: [it[key] for it in good] for key in ("name", "mask_name", "frame_size")
             if good and key in good[0]}
    for key in ("image", "frame"):
        if good and key in good[0]:
            batch[key] = torch.stack([it[key] for it in good])
    if good and "jpeg" in good[0]:
        batch["jpeg"] = torch.cat([it["jpeg"] for it in good])
        batch["jpeg_sizes"] = [len(it["jpeg"]) for it in good]
    batch["errors"] = [(it["name"], it["error"]) for it in items if "error" in it]
    return batch


def open_frames(source: Path, size: tuple[int, int], out: Path, overlay: bool, resume: bool,
                jpegs_on_device: bool) -> Dataset | IterableDataset:
    """The frames of --input, skipping those with a mask in --out when resuming; a folder's JPEGs come as
    bytes when the device decodes them."""
    done = {p.name for p in out.glob("*.png") if p.name != "legend.png"} if resume else set()
    if source.is_dir():
        names = sorted(p.name for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not names:
            raise FileNotFoundError(f"--input {source} holds no {'/'.join(FRAME_SUFFIXES)} frames: pass a "
                                    "folder of frames or a video file")
        todo = [n for n in names if Path(n).stem + ".png" not in done]
        all_jpeg = all(Path(n).suffix.lower() in (".jpg", ".jpeg") for n in names)
        return FolderFrames(source, todo, size, jpegs_on_device and all_jpeg)
    if not source.is_file():
        raise FileNotFoundError(f"--input {source} not found: pass a folder of frames or a video file")
    return VideoFrames(source, size, overlay, done)


def device_images(batch: dict, size: tuple[int, int], device: torch.device,
                  decode_stream: torch.cuda.Stream | None = None) -> tuple[torch.Tensor | None, list]:
    """A batch on the device: (images (B, 3, H, W) float in [0, 1] at size=(H, W), channels_last, or None when
    no frame was readable; the frames' own (H, W)). Its `jpeg` bytes are decoded there (nvJPEG on a GPU, on
    `decode_stream`, so that the student's stream, the current one, segments the last batch meanwhile) and
    resized as data.py does (bilinear, antialiased); an unreadable one moves to the batch's `errors`."""
    if "image" in batch:
        # (B, H, W, 3): channels_last
        images = batch["image"].to(device, non_blocking=True).permute(0, 3, 1, 2)
        return images.float().div_(255), batch["frame_size"]
    if "jpeg" not in batch:
        return None, []
    if decode_stream is None:
        return decode_and_resize(batch, size, device)
    # torchvision's decoder allocates its outputs on the current stream but writes them from a stream of its
    # own that waits for nothing queued before (pytorch/vision#9606): memory freed on the current stream
    # while kernels queued there still read it can be handed to nvJPEG and overwritten. On decode_stream the
    # only such kernels are the last batch's resize, which read its decoded frames: wait for them alone.
    decode_stream.synchronize()
    with torch.cuda.stream(decode_stream):
        images, sizes = decode_and_resize(batch, size, device)
    if images is not None:
        student_stream = torch.cuda.current_stream(device)
        # The student's kernels start once the resize has written the images ...
        student_stream.wait_stream(decode_stream)
        # ... and the images' memory, decode_stream's, goes back to its pool only once the student's kernels
        # queued by then have read it: else the next batch's nvJPEG could be handed it and write it first.
        images.record_stream(student_stream)
    return images, sizes


def decode_and_resize(batch: dict, size: tuple[int, int],
                      device: torch.device) -> tuple[torch.Tensor | None, list]:
    """`device_images` for a batch of `jpeg` bytes, on the current stream."""
    from torchvision.io import ImageReadMode, decode_jpeg

    files = list(torch.split(batch["jpeg"], batch["jpeg_sizes"]))
    try:
        frames = decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad file fails the whole batch: decode its files one by one to find it
        if device.type == "cuda":
            # A failed batch may leave nvJPEG writing into the outputs it freed: let it finish first.
            torch.cuda.synchronize(device)
        frames = []
        for jpeg, name, mask_name in list(zip(files, batch["name"], batch["mask_name"])):
            try:
                frames.append(decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as error:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # as above
                batch["errors"].append((name, f"cannot decode it as a JPEG ({str(error).splitlines()[0]})"))
                batch["name"].remove(name)
                batch["mask_name"].remove(mask_name)
    if not frames:
        return None, []
    images = torch.cat([F.interpolate(f[None].float(), size=size, mode="bilinear", antialias=True)
                        for f in frames])
    return (images.div_(255).contiguous(memory_format=torch.channels_last),
            [tuple(f.shape[1:]) for f in frames])


def run_names(checkpoint: Path, state: dict) -> tuple[np.ndarray | None, np.ndarray, list[str], str]:
    """(channel -> id mapping or None, display palette, legend names, what the ids are) of a run: FSSOD
    classes named by the run's stored strict mapping, or unnamed clusters."""
    import json

    results = checkpoint.parent / "results.json"
    if results.is_file() and "mapping" in (saved := json.loads(results.read_text())):
        return np.asarray(saved["mapping"], dtype=np.uint8), DISPLAY_PALETTE, CLASS_NAMES, "FSSOD class ids"
    clusters = state["args"]["clusters"]
    return None, cluster_palette(clusters), [f"cluster {k}" for k in range(clusters)], "cluster ids (unnamed)"


def full_size_mask(mask: np.ndarray, frame_size: tuple[int, int], palette: np.ndarray) -> Image.Image:
    """mask (h, w) uint8 ids at the run's size -> a mode P image of frame_size=(H, W), nearest neighbour."""
    image = Image.fromarray(mask).resize((frame_size[1], frame_size[0]), resample=Image.Resampling.NEAREST)
    image.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())  # mode L -> P, values untouched
    return image


def blend(frame: Image.Image, mask: Image.Image) -> Image.Image:
    """The frame (RGB) half covered by its mask's display colours."""
    return Image.blend(frame, mask.convert("RGB"), 0.5)


def write_masks(out: Path, names: list[str], masks: np.ndarray, frame_sizes: list[tuple[int, int]],
                palette: np.ndarray, frames: list[Path] | None) -> None:
    """A batch's masks (N, h, w) uint8 -> out/names[i], palettised PNGs at frame_sizes[i] = (H, W) (and
    out/overlays/ each frame file of `frames` blended with its mask), each written atomically. Runs in a
    writing process: PNG encoding holds the GIL, threads would take turns."""
    for i, (name, mask, frame_size) in enumerate(zip(names, masks, frame_sizes)):
        image = full_size_mask(mask, frame_size, palette)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)  # masks compress well even at the fastest level
        write_atomically(out / name, buffer.getvalue())
        if frames is not None:
            with Image.open(frames[i]) as opened:
                buffer = io.BytesIO()
                blend(opened.convert("RGB"), image).save(buffer, format="JPEG", quality=90)
            write_atomically(out / OVERLAYS / (Path(name).stem + ".jpg"), buffer.getvalue())


def nearest(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """image (..., h, w) -> (..., H, W) at size=(H, W), each pixel taking the value under its centre: the rule
    of PIL's nearest-neighbour resize, which the mask PNGs take (PIL's rounding moves 1 pixel in 200)."""
    rows = ((torch.arange(size[0], device=image.device) + 0.5) * (image.shape[-2] / size[0])).long()
    columns = ((torch.arange(size[1], device=image.device) + 0.5) * (image.shape[-1] / size[1])).long()
    return image.index_select(-2, rows).index_select(-1, columns)


def yuv_colours(palette: np.ndarray) -> torch.Tensor:
    """(K, 3) uint8 RGB -> (K, 3) uint8 (Y, U, V): BT.601, limited range, as swscale makes yuv420p of RGB."""
    to_yuv = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
    yuv = torch.as_tensor(palette, dtype=torch.float32) / 255 @ to_yuv.T + torch.tensor([16.0, 128.0, 128.0])
    return yuv.round().to(torch.uint8)


def blend_yuv420(frames: torch.Tensor, ids: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """frames (B, 3H/2, W) uint8, yuv420p's planes as PyAV lays them out (Y (H, W), then U and V (H/2, W/2)
    each), ids (B, h, w) at the run's size, colours (K, 3) uint8 (`yuv_colours`) -> the frames half covered
    by their masks' colours, in the same layout. Blending is linear, so blending the planes is blending the
    RGB pixels (as `blend` does): no frame is converted to RGB and back."""
    height, width = frames.shape[1] * 2 // 3, frames.shape[2]
    shown = colours[ids.long()].permute(0, 3, 1, 2)  # (B, 3, h, w): looked up small, then enlarged
    planes = torch.cat([nearest(shown[:, 0], (height, width)).flatten(1),
                        nearest(shown[:, 1:], (height // 2, width // 2)).flatten(1)], dim=1)
    planes = planes.view(frames.shape)
    return (frames >> 1) + (planes >> 1) + (frames & planes & 1)  # (a + b) // 2, without leaving uint8


class OverlayVideo:
    """A video's frames with their masks blended, as one MP4 (H.264 where PyAV has libx264, else MPEG-4
    part 2) at the input's frame rate; written to a temporary name and renamed by `close`."""

    def __init__(self, path: Path, rate: Fraction | int, frame_size: tuple[int, int]):
        import av

        self.path = path
        self.temporary = path.with_name(f".{path.stem}.{os.getpid()}.mp4")
        self.container = av.open(str(self.temporary), "w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=rate,
                                                options={"preset": "veryfast"} if codec == "libx264" else {})
        # Frame threads (x264 encodes several frames at once, a thread per core and a half), not PyAV's
        # default of slice threads alone: frames scale to many cores better than slices of one frame.
        self.stream.codec_context.thread_type = "AUTO"
        # 4:2:0 chroma needs even sides (VideoFrames makes them so).
        self.stream.height, self.stream.width = frame_size[0] // 2 * 2, frame_size[1] // 2 * 2
        self.stream.pix_fmt = "yuv420p"

    def add(self, frame: np.ndarray) -> None:
        """frame (3H/2, W) uint8: yuv420p's planes, blended (`blend_yuv420`)."""
        import av

        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(frame, format="yuv420p")))

    def close(self, keep: bool) -> None:
        """Finish the MP4 and rename it into place (keep), or delete it (a stopped run's is incomplete)."""
        if keep:
            self.container.mux(self.stream.encode())
        self.container.close()
        if keep:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def write_legend(path: Path, palette: np.ndarray, names: list[str], what: str) -> None:
    figure = Figure(figsize=(3.2, 0.25 * len(names) + 0.5))
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="grey", label=f"{i}: {n}")
               for i, (c, n) in enumerate(zip(palette, names))]
    figure.legend(handles=handles, loc="center", fontsize=8, frameon=False,
                  title=f"mask values: {what}\n(colours for display only)")
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomically(path, buffer.getvalue())


def to_host(*tensors: torch.Tensor) -> tuple[list[torch.Tensor], torch.cuda.Event | None]:
    """Tensors on the device -> (host tensors, the event after which they hold them). On a GPU pinned,
    asynchronous copies: the host waits for them only once it has queued the next batches' work."""
    if tensors[0].device.type != "cuda":
        return [t.cpu() for t in tensors], None
    hosts = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
             for t in tensors]
    copied = torch.cuda.Event()
    copied.record()
    return hosts, copied


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="RUN/checkpoint.pt or RUN/fold-F/checkpoint.pt of train.py")
    p.add_argument("--input", required=True, help="a folder of .jpg/.png frames, or a video file")
    p.add_argument("--out", required=True, help="folder for the masks (one PNG per frame) and legend.png")
    p.add_argument("--overlay", action="store_true", help="also write each frame with its mask blended "
                   "over it (overlays/*.jpg for a folder, overlay.mp4 for a video)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="skip frames whose mask --out already holds")
    existing.add_argument("--overwrite", action="store_true", help="replace the masks --out already holds")
    p.add_argument("--batch-size", type=int, help="frames the student segments at once (default 32 on a GPU, "
                   "where large batches keep it busy; 1 on a CPU, where a small one stays in its caches)")
    p.add_argument("--workers", type=int,
                   help=f"decoding processes (default, at least 1: a quarter of the {cores} cores this "
                        "process may use when the device decodes JPEGs, as the processes then only read "
                        "files; half of them otherwise; a video is decoded by one); 0 does all in this "
                        "process, writing too")
    p.add_argument("--writers", type=int, help="PNG-writing processes (default: the cores that the decoding "
                   "processes and this one leave, at least 1; none with --workers 0)")
    p.add_argument("--jpeg-decoder", choices=["pil", "device"],
                   help="who decodes a folder of JPEGs: PIL at reduced scale in the --workers processes, or "
                        "the device (nvJPEG on a GPU); default device on a GPU, pil otherwise")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the student, compiled on a dummy batch before the clock starts")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the student runs: cuda (the default when there is a GPU), cuda:1, cpu, ...")
    args = p.parse_args(argv)
    on_gpu = torch.device(args.device).type == "cuda"
    if args.batch_size is None:
        args.batch_size = 32 if on_gpu else 1
    args.jpeg_decoder = args.jpeg_decoder or ("device" if on_gpu else "pil")
    if args.workers is None:
        args.workers = max(1, cores // 4 if args.jpeg_decoder == "device" else cores // 2)
    if args.writers is None:
        args.writers = max(1, cores - args.workers - 1) if args.workers else 0
    return args


def predict(args: argparse.Namespace) -> dict:
    """Segment --input into --out (the module docstring says how); returns the run's report: frames, seconds,
    fps, the main loop's wait for each stage and the stage it waited for most (`limit`)."""
    checkpoint, source, out = Path(args.checkpoint), Path(args.input), Path(args.out)
    state = load_checkpoint(checkpoint)
    if out.is_dir() and any(p.name != "legend.png" for p in out.glob("*.png")) and not (args.resume
                                                                                        or args.overwrite):
        raise ValueError(f"--out {out} already holds masks: pass --resume to add the missing ones, "
                         "--overwrite to replace them, or another --out")
    size, device = tuple(state["args"]["size"]), torch.device(args.device)
    dataset = open_frames(source, size, out, args.overlay, args.resume, args.jpeg_decoder == "device")
    if state["args"]["data"] == "synthetic":
        print(f"warning: {checkpoint} was trained on synthetic scenes (train.py's default): its masks "
              "of real footage mean nothing; train with --data FSSOD_DIR for those", file=sys.stderr)
    video_in = isinstance(dataset, VideoFrames)
    jpeg_bytes = not video_in and dataset.jpeg_bytes  # a folder of JPEGs, decoded on the device
    (out / OVERLAYS if args.overlay and not video_in else out).mkdir(parents=True, exist_ok=True)
    mapping, palette, names, what = run_names(checkpoint, state)
    write_legend(out / "legend.png", palette, names, what)
    if video_in and args.overlay and dataset.skip:
        print(f"note: --resume skips the {len(dataset.skip)} frames that have masks, so {OVERLAY_VIDEO}, "
              "which needs every frame, is not written; pass --overwrite for it", file=sys.stderr)
    total = (dataset.frames and dataset.frames - len(dataset.skip)) if video_in else len(dataset)

    # Writing processes start from a clean forkserver, not a fork of this multi-threaded, CUDA-holding one,
    # and beside the model's warm-up; they ignore Ctrl-C, which this process answers by letting their current
    # batch finish.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    writers = ProcessPoolExecutor(args.writers, multiprocessing.get_context(method),
                                  initializer=signal.signal,
                                  initargs=(signal.SIGINT, signal.SIG_IGN)) if args.writers else None
    writers_started = [writers.submit(os.getpid) for _ in range(args.writers)] if writers else []
    # bf16 where the device computes it natively: a GPU, or a CPU with AVX512-BF16 (AMX CPUs have it); other
    # CPUs emulate it, slower than fp32.
    cuda = device.type == "cuda"
    bf16 = cuda or (device.type == "cpu" and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    torch.backends.cudnn.benchmark = cuda
    model = trained_student(state, device)
    # The same logits with fewer passes over memory: batch norms and ReLU6 copies folded everywhere, Lite0's
    # padding only where that pays (engineering/fast_inference.py says where, and why).
    model = inference_copy(model, device)
    model = model.to(memory_format=torch.channels_last)
    model = torch.compile(model) if args.compile else model
    to_ids = None if mapping is None else torch.as_tensor(mapping, device=device)
    # nvJPEG and the resize get a stream of their own: the GPU decodes batch n + 1 while it segments batch n.
    decode_stream = torch.cuda.Stream(device) if cuda and jpeg_bytes else None
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        # Compilation (and cuDNN's choice of kernels) happens here, on a dummy batch, not on the clock.
        model(torch.zeros(args.batch_size, 3, *size, device=device
                          ).contiguous(memory_format=torch.channels_last))
        if jpeg_bytes:  # nvJPEG sets itself up on its first call: on a blank frame, not on the clock
            blank = io.BytesIO()
            Image.new("RGB", (size[1], size[0])).save(blank, format="JPEG")
            jpeg = torch.frombuffer(bytearray(blank.getvalue()), dtype=torch.uint8)
            device_images(collate([{"name": "blank", "mask_name": "blank.png", "jpeg": jpeg}]), size, device,
                          decode_stream)
    for started in writers_started:
        started.result()
    # Decoded frames are pinned for an asynchronous copy; JPEG bytes are not: nvJPEG reads them on the host.
    loader = DataLoader(dataset, batch_size=args.batch_size, collate_fn=collate,
                        pin_memory=cuda and not jpeg_bytes,
                        num_workers=min(1, args.workers) if video_in else args.workers)

    video = (OverlayVideo(out / OVERLAY_VIDEO, dataset.rate, dataset.frame_size)
             if video_in and args.overlay and not dataset.skip else None)
    colours = yuv_colours(palette).to(device) if video else None
    native = tuple(state["args"].get("native_size", size))
    # Batches queued on the device before the oldest one's masks are awaited: that wait, its copy back to the
    # host, finds the work of the next two batches queued behind it, so the device never runs dry.
    queued = 2
    aspect_said, done, skipped, pending, in_flight, finished = False, 0, 0, deque(), deque(), False
    waited = dict(frames=0.0, device=0.0, writing=0.0)  # the main loop's wait for each stage
    start = tick = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        waited[stage], tick = waited[stage] + now - tick, now

    def hand_over(batch: dict, sizes: list, hosts: list[torch.Tensor],
                  copied: torch.cuda.Event | None) -> None:
        """A batch's masks (and blended video frames), once on the host, to the writers (and the video)."""
        nonlocal aspect_said, done
        if copied is not None:
            copied.synchronize()
        lap("device")
        masks = hosts[0].numpy()
        odd = [(name, h, w) for name, (h, w) in zip(batch["name"], sizes)
               if abs(w / h - native[1] / native[0]) > 0.01]
        if odd and not aspect_said:
            print(f"note: frames like {odd[0][0]} are {odd[0][2]} x {odd[0][1]}, another aspect "
                  f"ratio than the run's {native[1]} x {native[0]} frames: the student sees them "
                  f"stretched to {size[1]} x {size[0]}", file=sys.stderr)
            aspect_said = True
        frames = [source / name for name in batch["name"]] if args.overlay and not video_in else None
        work = (out, batch["mask_name"], masks, sizes, palette, frames)
        if writers:
            pending.append(writers.submit(write_masks, *work))
            while len(pending) > 2 * args.writers:  # a bounded backlog: memory stays flat
                pending.popleft().result()
        else:
            write_masks(*work)
        for blended in hosts[1].numpy() if video else []:
            video.add(blended)
        done += len(masks)
        bar.update(len(masks))
        lap("writing")

    try:
        with tqdm(total=total, unit="frame", disable=None) as bar:
            for batch in loader:
                lap("frames")
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    images, sizes = device_images(batch, size, device, decode_stream)
                    skipped += len(batch["errors"])
                    bar.update(len(batch["errors"]))
                    for name, error in batch["errors"]:
                        print(f"warning: skipping {source / name}: {error}", file=sys.stderr)
                    if images is None:
                        continue
                    n = len(images)
                    if (args.compile or cuda) and n < args.batch_size:
                        # One input shape: no second compilation, no cuDNN autotuning of a new shape
                        # (seconds of it).
                        images = torch.cat([images, images.new_zeros(args.batch_size - n, *images.shape[1:])]
                                           ).contiguous(memory_format=torch.channels_last)
                    channels = model(images)[:n].argmax(1)
                    ids = (channels if to_ids is None else to_ids[channels]).byte()
                    shown = [blend_yuv420(batch["frame"].to(device, non_blocking=True), ids, colours)
                             ] if video else []
                    # Queued, not awaited: the device works on while the host hands earlier batches over.
                    in_flight.append((batch, sizes, *to_host(ids, *shown)))
                lap("device")
                if len(in_flight) > queued:
                    hand_over(*in_flight.popleft())
            while in_flight:
                hand_over(*in_flight.popleft())
            while pending:
                pending.popleft().result()
            lap("writing")
        finished = True
    finally:
        if writers:
            writers.shutdown(cancel_futures=True)
        if video:
            video.close(keep=finished)
    wall = time.perf_counter() - start
    limit = max(waited, key=waited.get)
    report = dict(frames=done, skipped=skipped, seconds=wall, fps=done / wall if wall else 0.0, limit=limit,
                  **{f"{k}_seconds": v for k, v in waited.items()})
    decoder = "PyAV" if video_in else "the device" if jpeg_bytes else "PIL"
    print(f"{done:,} frames in {wall:.1f} s: {report['fps']:,.1f} frames per second, decoding ({decoder}) "
          f"and writing included (the main loop waited {waited['frames']:.1f} s for frames, "
          f"{waited['device']:.1f} s for the device, {waited['writing']:.1f} s for writing: {limit} is the "
          f"limit); masks in {out}" + (f", the overlay video in {out / OVERLAY_VIDEO}" if video else "")
          + f"; {skipped:,} skipped (unreadable)")
    return report


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        return predict(args)
    except KeyboardInterrupt:
        pass  # leaving this block frees the loop and with it the decoding processes
    out = Path(args.out)
    kept = sum(p.name != "legend.png" for p in out.glob("*.png")) if out.is_dir() else 0
    again = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    again += [] if "--resume" in again else ["--resume"]
    print(f"stopped: the {kept} masks in {out} are kept" + (" (not the overlay video: only a run over every "
          "frame, --overwrite, writes it)" if args.overlay and Path(args.input).is_file() else "")
          + f"; continue with: {shlex.join(['python3', 'predict.py', *again])}", file=sys.stderr)
    raise SystemExit(130)


if __name__ == "__main__":
    report_user_errors(main)
