"""studies/: the region study end to end on the real frames, the summary of runs over seeds, and the
benchmark's quick CPU run."""
import json
import math

import numpy as np
import pytest
import torch

from classes import CLASS_NAMES
from data import open_dataset
from mask_set import MaskSet
from sam_teacher import build_cache
from stand_ins.regions import SuperpixelTeacher
from studies import benchmark, region_study, summarize


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
    build_cache(open_dataset(fssod_root, "all", (64, 96)), SuperpixelTeacher(), cache, progress=False)
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


def test_summarize_runs_averages_the_seeds_of_one_run_and_keeps_others_apart(tmp_path, capsys):
    def result(miou, seed, pseudo, folds):
        iou = {name: None if name == "Referee" else miou for name in CLASS_NAMES}
        r = {"seed": seed, "mask_source": "boundary", "clusters": 11, "epochs": 30, "folds": 5,
             "protocol": "cv",
             "strict": {"miou": miou, "fwiou": 2 * miou, "iou": iou},
             "per_split": {"miou": miou + 1}, "train_split": {"miou": miou - 1}}
        if pseudo is not None:
            r.update(pseudo_labels={"miou": pseudo}, pseudo_labels_train={"miou": pseudo + 1})
        if folds is not None:
            r["fold_miou"] = folds
        return r

    for name, miou, seed, pseudo, folds in [("main-seed0", 10.0, 0, 5.0, [8, 12, 10, 9, 11]),
                                            ("main-seed1", 20.0, 1, 7.0, [18, 22, 20, 19, 21]),
                                            ("supervised", 50.0, 0, None, None)]:
        (tmp_path / f"{name}.json").write_text(json.dumps(result(miou, seed, pseudo, folds)))
    rows = {r["name"]: r for r in summarize.summarize_runs(sorted(tmp_path.glob("*.json")))}
    assert set(rows) == {"main", "supervised"}
    assert rows["main"]["seeds"] == [0, 1] and rows["main"]["miou"]["mean"] == 15.0
    assert rows["main"]["miou"]["std"] == pytest.approx(np.std([10.0, 20.0], ddof=1))
    assert rows["main"]["fwiou"]["mean"] == 30.0 and rows["main"]["pseudo_label_miou"]["mean"] == 6.0
    assert rows["main"]["fold_miou"]["mean"] == 15.0 and rows["main"]["folds"] == 5
    assert np.isnan(rows["main"]["Referee"]["mean"]) and rows["main"]["Ball"]["mean"] == 15.0
    assert rows["supervised"]["miou"] == {"mean": 50.0, "std": 0.0} and rows["supervised"]["folds"] == 1
    assert np.isnan(rows["supervised"]["pseudo_label_miou"]["mean"])
    summarize.main([*map(str, tmp_path.glob("*.json"))])
    assert ("| `main` | boundary | 11 | 30 | 5 | 0 1 | 15.0 ± 7.1 | 30.0 ± 14.1 | 15.0 ± 5.5 |"
            in capsys.readouterr().out)
    summarize.main([*map(str, tmp_path.glob("main-*.json")), "--json", str(tmp_path / "headline.json")])
    headline = json.loads((tmp_path / "headline.json").read_text(), parse_constant=pytest.fail)  # no NaN
    assert (headline["miou"]["mean"] == 15.0 and headline["iou"]["Ball"]["mean"] == 15.0
            and headline["folds"] == 5)
    assert headline["iou"]["Referee"]["mean"] is None  # absent from every run: null, not NaN


def test_summarize_says_in_one_line_that_a_pattern_matched_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such results file"):
        summarize.main([str(tmp_path / "*" / "results.json")])



REQUIRED = ("student_bs32_img_per_s", "lraspp_bs32_img_per_s", "student_vs_lraspp_bs32",
            "student_bs1_latency_ms", "student_vs_lraspp_bs1", "student_gflops", "lraspp_gflops",
            "train_img_per_s")


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
    assert saved["throughput_batch_size"] == 2 and saved["student_bs32_variant"].startswith("fp32")
    assert 2e6 < saved["student_parameters"] < 5e6
    assert 0 < saved["student_gflops"] < saved["fcn_gflops"]
    inference = [r for r in saved["rows"] if r["section"] == "inference"]
    assert {r["variant"] for r in inference} >= {"fp32", "fp32 fused", "fp32+channels_last",
                                                  "fp32+channels_last bn-folded", "fp32+channels_last fused"}
    # Lite0's five stride-2 convolutions alone, as shipped and with their padding folded.
    assert len([r for r in saved["rows"] if r["section"] == "layers" and r["ms"] > 0]) == 10
    # The fusion table: the student and LRASPP at both batch sizes; on a CPU inference_copy folds everything.
    assert {(c["model"], c["batch"]) for c in saved["fusion"]} == {(m, b) for m in ("student", "lraspp")
                                                                   for b in (1, 2)}
    assert all(c["inference_copy"] == "fused" and set(c["ms"]) == {"as trained", "bn-folded", "fused"}
               for c in saved["fusion"])
    assert all(r["gflops"] > 0 and r["parameters"] > 0 and r["vs_lraspp"] > 0 for r in inference)
    assert (returned["rows"] == saved["rows"]
            and not any(r["note"].startswith("failed") for r in saved["rows"]))
