"""predict.py: segment new footage with a trained student, the real-time model SoccerSAM ships.

    python3 predict.py --checkpoint RUN/checkpoint.pt --input FOLDER_OR_VIDEO --out DIR [--overlay]

Each frame (a folder of .jpg/.png frames of any size, or a video file read as a stream with PyAV) is
resized to the run's training size, segmented by the student in batches (bf16 and channels_last on a
GPU, `--compile` optionally), and its mask resized back to the frame's own size by nearest neighbour.
Masks are palettised PNGs (mode P, as Pascal VOC's masks: a pixel's value is its id, the palette shows
it), named after the frame (`frame_000123.png` for a video): FSSOD class ids in FSSOD's colours where the
run's clusters have names (the strict mapping evaluate.py fitted on the run's training frames and stored
in its results.json), cluster ids otherwise (a run on unlabelled frames); `legend.png` says which is
which. Decoding runs in DataLoader worker processes beside the GPU, writing in threads beside both.
"""
import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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

from classes import CLASS_NAMES, PALETTE
from figures import cluster_palette
from models import load_checkpoint, trained_student
from utils import report_user_errors, write_atomically

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
OVERLAYS = "overlays"


def decode(item: dict, rgb: np.ndarray, size: tuple[int, int], overlay: bool) -> dict:
    """A decoded frame as the student takes it: (3, H, W) uint8 at the run's size (the bilinear resize of
    data.py), with the frame's own size, and the frame itself when an overlay is drawn."""
    frame = Image.fromarray(rgb)
    resized = np.asarray(frame.resize((size[1], size[0]), resample=Image.Resampling.BILINEAR))
    item.update(image=torch.from_numpy(resized.transpose(2, 0, 1).copy()), frame_size=rgb.shape[:2])
    if overlay:
        item["frame"] = rgb
    return item


class FolderFrames(Dataset):
    """The frames of a folder, in name order; an unreadable one comes back with its `error`."""

    def __init__(self, folder: Path, names: list[str], size: tuple[int, int], overlay: bool):
        self.folder, self.names, self.size, self.overlay = folder, names, size, overlay

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        item = {"name": name, "mask_name": Path(name).stem + ".png"}
        try:
            with Image.open(self.folder / name) as opened:
                rgb = np.asarray(opened.convert("RGB"))
        except (OSError, SyntaxError) as error:
            return {**item, "error": f"cannot read this image ({error})"}
        return decode(item, rgb, self.size, self.overlay)


class VideoFrames(IterableDataset):
    """A video's frames in order, decoded as a stream (one worker process): memory does not grow with
    the video's length. `skip` names the masks already written, whose frames are decoded but not served."""

    def __init__(self, path: Path, size: tuple[int, int], overlay: bool, skip: set[str]):
        self.path, self.size, self.overlay, self.skip = path, size, overlay, skip

    def __iter__(self):
        import av

        if (get_worker_info() or argparse.Namespace(id=0)).id:
            return  # a second worker would decode the same stream again
        with av.open(str(self.path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                name = f"frame_{index:06d}.png"
                if name not in self.skip:
                    yield decode({"name": name, "mask_name": name}, frame.to_ndarray(format="rgb24"), self.size,
                                 self.overlay)


def collate(items: list[dict]) -> dict:
    """Readable frames stack into a batch; the unreadable ones ride along as (name, error) pairs."""
    good = [it for it in items if "error" not in it]
    batch = {key: [it[key] for it in good] for key in ("name", "mask_name", "frame_size", "frame") if
             good and key in good[0]}
    batch["image"] = torch.stack([it["image"] for it in good]) if good else None
    batch["errors"] = [(it["name"], it["error"]) for it in items if "error" in it]
    return batch


def open_frames(source: Path, size: tuple[int, int], out: Path, overlay: bool, resume: bool):
    """(dataset, number of frames to do or None for a video) of --input, skipping frames with a mask
    in --out when resuming."""
    done = {p.name for p in out.glob("*.png") if p.name != "legend.png"} if resume else set()
    if source.is_dir():
        names = sorted(p.name for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not names:
            raise FileNotFoundError(f"--input {source} holds no {'/'.join(FRAME_SUFFIXES)} frames: pass a folder "
                                    "of frames or a video file")
        todo = [n for n in names if Path(n).stem + ".png" not in done]
        return FolderFrames(source, todo, size, overlay), len(todo)
    if not source.is_file():
        raise FileNotFoundError(f"--input {source} not found: pass a folder of frames or a video file")
    import av

    try:
        with av.open(str(source)) as container:
            frames = container.streams.video[0].frames or None
    except (av.FFmpegError, IndexError) as error:
        raise ValueError(f"--input {source}: cannot read it as a video ({error}); pass a folder of "
                         ".jpg/.png frames or a video file") from None
    return VideoFrames(source, size, overlay, done), None if frames is None else frames - len(done)


def run_names(checkpoint: Path, state: dict) -> tuple[np.ndarray | None, np.ndarray, list[str], str]:
    """(channel -> id mapping or None, palette, legend names, what the ids are) of a run: FSSOD classes
    named by the run's stored strict mapping, or unnamed clusters."""
    results = checkpoint.parent / "results.json"
    if results.is_file() and "mapping" in (saved := json.loads(results.read_text())):
        return np.asarray(saved["mapping"], dtype=np.uint8), PALETTE, CLASS_NAMES, "FSSOD class ids"
    clusters = state["args"]["clusters"]
    return None, cluster_palette(clusters), [f"cluster {k}" for k in range(clusters)], "cluster ids (unnamed)"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # masks compress well even at the fastest level
    return buffer.getvalue()


def write_mask(out: Path, name: str, mask: np.ndarray, palette: np.ndarray, frame: np.ndarray | None) -> None:
    """mask (H, W) uint8 ids -> out/name as a palettised PNG (and out/overlays/ the frame blended with it),
    each written to a temporary name and renamed."""
    image = Image.fromarray(mask)  # mode L; putpalette makes it P, the values untouched
    image.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    write_atomically(out / name, png_bytes(image))
    if frame is not None:
        blended = (0.5 * frame + 0.5 * np.asarray(palette, dtype=np.float32)[mask]).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(blended).save(buffer, format="JPEG", quality=90)
        write_atomically(out / OVERLAYS / (Path(name).stem + ".jpg"), buffer.getvalue())


def write_legend(path: Path, palette: np.ndarray, names: list[str], what: str) -> None:
    figure = Figure(figsize=(3.2, 0.25 * len(names) + 0.5))
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="grey", label=f"{i}: {n}")
               for i, (c, n) in enumerate(zip(palette, names))]
    figure.legend(handles=handles, loc="center", fontsize=8, frameon=False, title=f"mask values: {what}")
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomically(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="RUN/checkpoint.pt or RUN/fold-F/checkpoint.pt of train.py")
    p.add_argument("--input", required=True, help="a folder of .jpg/.png frames, or a video file")
    p.add_argument("--out", required=True, help="folder for the masks (one PNG per frame) and legend.png")
    p.add_argument("--overlay", action="store_true", help="also write each frame with its mask blended over it")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="skip frames whose mask --out already holds")
    existing.add_argument("--overwrite", action="store_true", help="replace the masks --out already holds")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="decoding processes (a video uses one)")
    p.add_argument("--compile", action="store_true", help="torch.compile the student (slow first batch)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    checkpoint, source, out = Path(args.checkpoint), Path(args.input), Path(args.out)
    state = load_checkpoint(checkpoint)
    if out.is_dir() and any(p.name != "legend.png" for p in out.glob("*.png")) and not (args.resume
                                                                                        or args.overwrite):
        raise ValueError(f"--out {out} already holds masks: pass --resume to add the missing ones, "
                         "--overwrite to replace them, or another --out")
    size = tuple(state["args"]["size"])
    dataset, total = open_frames(source, size, out, args.overlay, args.resume)
    (out / OVERLAYS if args.overlay else out).mkdir(parents=True, exist_ok=True)
    mapping, palette, names, what = run_names(checkpoint, state)
    write_legend(out / "legend.png", palette, names, what)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    student = trained_student(state, device)
    if cuda:
        student = student.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    model = torch.compile(student) if args.compile else student
    to_ids = None if mapping is None else torch.as_tensor(mapping, device=device)
    workers = 1 if isinstance(dataset, VideoFrames) else args.workers
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=cuda, persistent_workers=False)
    native = tuple(state["args"].get("native_size", size))
    aspect_said, done, seconds = False, 0, dict(decode=0.0, inference=0.0, writing=0.0)
    writers = ThreadPoolExecutor(max_workers=4)
    pending = []
    start = tick = time.perf_counter()
    with tqdm(total=total, unit="frame", disable=None) as bar:
        for batch in loader:
            now = time.perf_counter()
            seconds["decode"], tick = seconds["decode"] + now - tick, now
            for name, error in batch["errors"]:
                print(f"warning: skipping {source / name}: {error}", file=sys.stderr)
            if batch["image"] is None:
                continue
            sizes = batch["frame_size"]
            if not aspect_said and any(abs(w / h - native[1] / native[0]) > 0.01 for h, w in sizes):
                h, w = next((h, w) for h, w in sizes if abs(w / h - native[1] / native[0]) > 0.01)
                print(f"note: frames like {batch['name'][0]} are {w} x {h}, another aspect ratio than the run's "
                      f"{native[1]} x {native[0]} frames: the student sees them stretched to {size[1]} x {size[0]}",
                      file=sys.stderr)
                aspect_said = True
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                images = batch["image"].to(device, non_blocking=True).float().div_(255)
                if cuda:
                    images = images.contiguous(memory_format=torch.channels_last)
                channels = model(images).argmax(1)
                ids = channels if to_ids is None else to_ids[channels]
                masks = [F.interpolate(m[None, None].float(), size=tuple(s), mode="nearest")[0, 0].byte().cpu()
                         for m, s in zip(ids, sizes)]
            now = time.perf_counter()
            seconds["inference"], tick = seconds["inference"] + now - tick, now
            frames = batch.get("frame", [None] * len(masks))
            pending += [writers.submit(write_mask, out, n, m.numpy(), palette, f)
                        for n, m, f in zip(batch["mask_name"], masks, frames)]
            while len(pending) > 4 * args.batch_size:  # a bounded backlog: memory stays flat
                pending.pop(0).result()
            done += len(masks)
            bar.update(len(masks) + len(batch["errors"]))
            now = time.perf_counter()
            seconds["writing"], tick = seconds["writing"] + now - tick, now
        for future in pending:
            future.result()
        seconds["writing"] += time.perf_counter() - tick
    writers.shutdown()
    wall = time.perf_counter() - start
    report = dict(frames=done, seconds=wall, fps=done / wall if wall else 0.0,
                  **{f"{k}_seconds": v for k, v in seconds.items()})
    print(f"{done} frames in {wall:.1f} s: {report['fps']:.1f} frames per second (the main loop's time: "
          f"waiting for decoding {seconds['decode']:.1f} s, inference {seconds['inference']:.1f} s, writing "
          f"{seconds['writing']:.1f} s); masks in {out}")
    return report


if __name__ == "__main__":
    report_user_errors(main)
