"""predict.py on CPU: a 2-epoch synthetic run segments a folder of frames and a tiny video, draws them in the
display palette, warns that its run is synthetic, and stops cleanly on Ctrl-C."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import predict
import train
from figures import DISPLAY_PALETTE
from stand_ins.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train.main(["--epochs", "2", "--max-frames", "8", "--batch-size", "4", "--size", "64", "96",
                "--out", str(out / "run"), "--cache", str(out / "cache")])
    return out / "run"


def frames_folder(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    folder.mkdir()
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(make_scene(100 + i, (height, width))[0]).save(folder / f"clip {i}.jpg")
    return folder


# "device" decodes the JPEGs where the student runs (nvJPEG on a GPU; torchvision's CPU decoder here).
@pytest.mark.parametrize("decoder", ["pil", "device"])
def test_a_folder_becomes_palettised_masks_at_the_frames_sizes(run, tmp_path, capsys, decoder):
    folder = frames_folder(tmp_path / "frames", [(64, 96), (90, 160), (64, 96)])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    report = predict.main(["--checkpoint", str(run / "checkpoint.pt"), "--input", str(folder),
                           "--jpeg-decoder", decoder, "--out", str(tmp_path / "masks"), "--overlay",
                           "--workers", "0", "--batch-size", "2"])
    out, err = capsys.readouterr()
    assert report["frames"] == 3 and "warning: skipping" in err and "broken.jpg" in err
    assert report["skipped"] == 1 and out.strip().endswith("; 1 skipped (unreadable)")
    assert err.count("trained on synthetic scenes") == 1
    # Said once, for the 160 x 90 frame: the run's frames are 96 x 64.
    assert err.count("another aspect ratio") == 1
    mapping = json.loads((run / "results.json").read_text())["mapping"]
    for i, size in enumerate([(64, 96), (90, 160), (64, 96)]):
        mask = Image.open(tmp_path / "masks" / f"clip {i}.png")
        assert mask.mode == "P" and mask.size == (size[1], size[0])
        assert set(np.unique(np.asarray(mask)).tolist()) <= set(mapping)
        # The palette shows the ids in figures.py's colours, where Team A and Goalkeeper A differ.
        palette = np.asarray(mask.getpalette(), dtype=np.uint8)[:33].reshape(11, 3)
        assert np.array_equal(palette, DISPLAY_PALETTE) and len(np.unique(palette, axis=0)) == 11
        assert Image.open(tmp_path / "masks" / "overlays" / f"clip {i}.jpg").size == (size[1], size[0])
    assert (tmp_path / "masks" / "legend.png").read_bytes()[:4] == b"\x89PNG"


def test_worker_counts_follow_the_cores(monkeypatch):
    monkeypatch.setattr(predict.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    common = ["--checkpoint", "c.pt", "--input", "frames", "--out", "masks", "--device", "cpu"]
    # Processes that only read JPEGs for the device leave most cores to the writers; PIL's decoding, half.
    device = predict.parse_args([*common, "--jpeg-decoder", "device"])
    pil = predict.parse_args(common)
    assert (device.workers, device.writers) == (4, 11) and (pil.workers, pil.writers) == (8, 7)
    assert predict.parse_args([*common, "--workers", "0"]).writers == 0
    assert predict.parse_args([*common, "--workers", "0", "--writers", "2"]).writers == 2


def test_the_overlay_blended_in_yuv_is_the_rgb_blend():
    import av

    rgb = make_scene(3, (64, 96))[0]
    planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    as_rgb = av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24")
    ids = torch.zeros(1, 16, 24, dtype=torch.uint8)
    ids[:, :, 12:], ids[:, 8:] = 2, 7
    mask = predict.full_size_mask(ids[0].numpy(), (64, 96), DISPLAY_PALETTE)
    assert np.array_equal(predict.nearest(ids, (64, 96))[0].numpy(), np.asarray(mask))
    expected = np.asarray(predict.blend(Image.fromarray(as_rgb), mask), dtype=int)
    blended = predict.blend_yuv420(torch.from_numpy(planes)[None], ids, predict.yuv_colours(DISPLAY_PALETTE))
    got = av.VideoFrame.from_ndarray(blended[0].numpy(), format="yuv420p").to_ndarray(format="rgb24")
    # Off by a grey level or two from rounding, more only where a mask's edge splits a chroma pixel.
    difference = np.abs(got.astype(int) - expected)
    assert difference.mean() < 1.5 and np.percentile(difference, 95) <= 2


def test_out_with_masks_is_refused_and_resume_skips_what_exists(run, tmp_path):
    folder = frames_folder(tmp_path / "frames", [(64, 96)] * 3)
    common = ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(folder),
              "--out", str(tmp_path / "m"), "--workers", "0"]
    assert predict.main(common)["frames"] == 3
    first = (tmp_path / "m" / "clip 0.png").stat().st_mtime_ns
    with pytest.raises(ValueError, match="already holds masks: pass --resume"):
        predict.main(common)
    (tmp_path / "m" / "clip 2.png").unlink()
    assert predict.main([*common, "--resume"])["frames"] == 1
    assert (tmp_path / "m" / "clip 0.png").stat().st_mtime_ns == first
    assert predict.main([*common, "--overwrite"])["frames"] == 3
    assert not list((tmp_path / "m").glob(".*"))  # no temporary file left behind


def test_a_video_is_read_as_a_stream_in_order_and_its_overlay_is_one_mp4(run, tmp_path, capsys):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(make_scene(i, (64, 96))[0], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    out = tmp_path / "masks"
    common = ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(path), "--out", str(out),
              "--overlay", "--batch-size", "4", "--workers", "1"]
    report = predict.main(common)
    assert report["frames"] == 6
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(6)]
    assert Image.open(out / "frame_000005.png").size == (96, 64)
    with av.open(str(out / "overlay.mp4")) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert container.streams.video[0].average_rate == 5
    assert len(decoded) == 6 and decoded[0].shape == (64, 96, 3)
    assert not list(out.glob(".*")) and not (out / "overlays").exists()
    # A resumed run sees only some frames: it says that it writes no video, and leaves the finished one be.
    (out / "frame_000004.png").unlink()
    capsys.readouterr()
    assert predict.main([*common, "--resume"])["frames"] == 1
    assert "overlay.mp4, which needs every frame, is not written" in capsys.readouterr().err
    assert (out / "overlay.mp4").is_file() and not list(out.glob(".*"))


def test_ctrl_c_stops_at_once_in_one_line_that_says_how_to_continue(run, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(make_scene(0, (64, 96))[0]).save(folder / "frame_0000.jpg")
    for i in range(1, 400):
        (folder / f"frame_{i:04d}.jpg").write_bytes((folder / "frame_0000.jpg").read_bytes())
    out = tmp_path / "masks"
    # Its own session, so that Ctrl-C reaches it and its workers, as a terminal's does, and not pytest.
    proc = subprocess.Popen([sys.executable, "predict.py", "--checkpoint", str(run / "checkpoint.pt"),
                             "--input", str(folder), "--out", str(out), "--batch-size", "1",
                             "--workers", "1"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("frame_*.png")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    interrupted = time.monotonic()
    err = proc.communicate(timeout=30)[1]
    assert time.monotonic() - interrupted < 5 and proc.returncode == 130, err
    lines = [line for line in err.splitlines() if not line.startswith(("warning:", "note:"))]
    assert len(lines) == 1 and lines[0].startswith("stopped: the ") and "Traceback" not in err, err
    kept = len(list(out.glob("frame_*.png")))
    assert 0 < kept < 400 and f"the {kept} masks in {out} are kept" in lines[0]
    command = shlex.split(lines[0].split("continue with: ")[1])
    assert command[:2] == ["python3", "predict.py"] and command[-1] == "--resume"
    again = command[2:]
    again[again.index("--workers") + 1] = "0"  # quicker here
    assert predict.main(again)["frames"] == 400 - kept
    assert len(list(out.glob("frame_*.png"))) == 400 and not list(out.glob(".*"))


def test_bad_input_is_one_line(run, tmp_path):
    (tmp_path / "not.pt").write_bytes(b"nothing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"no video here")
    for args in (["--checkpoint", str(tmp_path / "not.pt"), "--input", str(tmp_path),
                  "--out", str(tmp_path / "o")],
                 ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(tmp_path / "empty"),
                  "--out", str(tmp_path / "o")],
                 ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(tmp_path / "clip.mp4"),
                  "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
