"""predict.py on CPU: a 2-epoch synthetic run segments a folder of frames and a tiny video."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import predict
import train
from classes import PALETTE
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


def test_a_folder_becomes_palettised_masks_at_the_frames_sizes(run, tmp_path, capsys):
    folder = frames_folder(tmp_path / "frames", [(64, 96), (90, 160), (64, 96)])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    report = predict.main(["--checkpoint", str(run / "checkpoint.pt"), "--input", str(folder),
                           "--out", str(tmp_path / "masks"), "--overlay", "--workers", "0", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert report["frames"] == 3 and "warning: skipping" in err and "broken.jpg" in err
    # Said once, for the 160 x 90 frame: the run's frames are 96 x 64.
    assert err.count("another aspect ratio") == 1
    mapping = json.loads((run / "results.json").read_text())["mapping"]
    for i, size in enumerate([(64, 96), (90, 160), (64, 96)]):
        mask = Image.open(tmp_path / "masks" / f"clip {i}.png")
        assert mask.mode == "P" and mask.size == (size[1], size[0])
        assert set(np.unique(np.asarray(mask)).tolist()) <= set(mapping)
        assert np.array_equal(np.asarray(mask.getpalette(), dtype=np.uint8)[:33].reshape(11, 3), PALETTE)
        assert Image.open(tmp_path / "masks" / "overlays" / f"clip {i}.jpg").size == (size[1], size[0])
    assert (tmp_path / "masks" / "legend.png").read_bytes()[:4] == b"\x89PNG"


def test_out_with_masks_is_refused_and_resume_skips_what_exists(run, tmp_path):
    folder = frames_folder(tmp_path / "frames", [(64, 96)] * 3)
    common = ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(folder), "--out", str(tmp_path / "m"),
              "--workers", "0"]
    assert predict.main(common)["frames"] == 3
    first = (tmp_path / "m" / "clip 0.png").stat().st_mtime_ns
    with pytest.raises(ValueError, match="already holds masks: pass --resume"):
        predict.main(common)
    (tmp_path / "m" / "clip 2.png").unlink()
    assert predict.main([*common, "--resume"])["frames"] == 1
    assert (tmp_path / "m" / "clip 0.png").stat().st_mtime_ns == first
    assert predict.main([*common, "--overwrite"])["frames"] == 3
    assert not list((tmp_path / "m").glob(".*"))  # no temporary file left behind


def test_a_video_is_read_as_a_stream_in_order(run, tmp_path):
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
    report = predict.main(["--checkpoint", str(run / "checkpoint.pt"), "--input", str(path), "--out", str(out),
                           "--batch-size", "4", "--workers", "1"])
    assert report["frames"] == 6
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(6)]
    assert Image.open(out / "frame_000005.png").size == (96, 64)


def test_bad_input_is_one_line(run, tmp_path):
    (tmp_path / "not.pt").write_bytes(b"nothing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"no video here")
    for args in (["--checkpoint", str(tmp_path / "not.pt"), "--input", str(tmp_path), "--out", str(tmp_path / "o")],
                 ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(tmp_path / "empty"),
                  "--out", str(tmp_path / "o")],
                 ["--checkpoint", str(run / "checkpoint.pt"), "--input", str(tmp_path / "clip.mp4"),
                  "--out", str(tmp_path / "o")]):
        proc = subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
