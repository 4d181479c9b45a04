"""benchmark.py smoke test on CPU: the quick run finishes and its JSON holds every required number."""
import json
import math

import benchmark

REQUIRED = ("student_bs32_img_per_s", "lraspp_bs32_img_per_s", "student_vs_lraspp_bs32",
            "student_bs1_latency_ms", "train_img_per_s")


def test_quick_cpu_run_writes_required_keys(tmp_path):
    out = tmp_path / "b.json"
    # SAM is skipped: its ViT-B encoder alone takes about 20 s per 1024 x 1024 frame on a 2-core CPU,
    # whatever points_per_side is. `python benchmark.py --quick --device cpu` runs it.
    returned = benchmark.main(["--quick", "--device", "cpu", "--skip", "sam", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert not list(tmp_path.glob("*.tmp"))
    for key in REQUIRED:
        assert isinstance(saved[key], float) and math.isfinite(saved[key]) and saved[key] > 0, key
    assert saved["student_vs_lraspp_bs32"] == saved["student_bs32_img_per_s"] / saved["lraspp_bs32_img_per_s"]
    assert 0 < saved["sbm_eq1_eq2_fraction"] < 1 and saved["superpixel_fps"] > 0
    assert saved["throughput_batch_size"] == 2 and saved["student_bs32_variant"] == "fp32"
    assert returned["rows"] == saved["rows"] and not any(r["note"].startswith("failed") for r in saved["rows"])
