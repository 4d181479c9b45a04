"""studies/: the region study end to end on the real frames, and the benchmark's quick CPU run."""
import json
import math

import numpy as np
import torch

from data import open_dataset
from mask_cache import build_cache
from mask_set import MaskSet
from regions import SuperpixelTeacher
from studies import benchmark, region_study


def test_region_quality_counts_pixels_whose_region_agrees_with_them():
    segments = torch.tensor([[0, 0, 1], [0, 1, 1]])
    label = np.array([[3, 3, 3], [4, 9, 9]])
    regions, labelled, pure, present = region_study.region_quality(
        MaskSet(segments, torch.eye(2, dtype=torch.bool)), label)
    assert (regions, labelled) == (2, 6)
    # Region 0 is ground (2 of 3), region 1 team B (2 of 3): the ball pixel and one ground pixel are lost.
    assert pure[3] == 2 and pure[9] == 2 and pure[4] == 0 and present[4] == 1


def test_every_region_source_is_scored(tmp_path, fssod_root, capsys):
    cache = tmp_path / "cache"
    build_cache(open_dataset(fssod_root, "all", (64, 96)), SuperpixelTeacher(), cache,
                            progress=False)
    region_study.main(["--data", str(fssod_root), "--caches", str(cache), "--size", "64", "96",
                       "--clusters", "11", "--seeds", "0", "--colour-weights", "0", "1"])
    table = capsys.readouterr().out.split("| regions |")[1]
    assert len([line for line in table.splitlines() if line.startswith("| superpixel")]) == 2


def test_cell_lab_colour_gives_known_colours_per_cell():
    images = torch.zeros(1, 3, 8, 8)
    images[0, 0, :, :4] = 1.0  # left half pure red, right half black
    lab = region_study.cell_lab_colour(images, (1, 2))
    assert lab.shape == (1, 3, 1, 2)
    assert torch.allclose(lab[0, :, 0, 0], torch.tensor([53.24, 80.09, 67.20]) / 100, atol=1e-3)
    assert torch.allclose(lab[0, :, 0, 1], torch.zeros(3), atol=1e-4)



REQUIRED = ("student_bs32_img_per_s", "lraspp_bs32_img_per_s", "student_vs_lraspp_bs32",
            "student_bs1_latency_ms", "train_img_per_s")


def test_quick_cpu_benchmark_writes_required_keys(tmp_path):
    out = tmp_path / "b.json"
    # SAM is skipped: its ViT-B encoder alone takes about 20 s per 1024 x 1024 frame on a 2-core CPU,
    # whatever points_per_side is. `python studies/benchmark.py --quick --device cpu` runs it.
    returned = benchmark.main(["--quick", "--device", "cpu", "--skip", "sam", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    for key in REQUIRED:
        assert isinstance(saved[key], float) and math.isfinite(saved[key]) and saved[key] > 0, key
    assert saved["student_vs_lraspp_bs32"] == saved["student_bs32_img_per_s"] / saved["lraspp_bs32_img_per_s"]
    assert 0 < saved["sbm_step_fraction"] < 1 and saved["superpixel_fps"] > 0 and saved["boundary_fps"] > 0
    assert saved["throughput_batch_size"] == 2 and saved["student_bs32_variant"] == "fp32"
    assert (returned["rows"] == saved["rows"]
            and not any(r["note"].startswith("failed") for r in saved["rows"]))
