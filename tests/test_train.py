"""train.py end to end on CPU: two processes, resume, the real frames, and no label in training."""
import builtins
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate
import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "64", "96", "--num-synthetic", "8", "--batch-size", "2", "--lr", "1e-3", "--lr-sbm", "1e-3"]
RUN_FILES = {"checkpoint.pt", "results.json", "classwise_iou.png", "qualitative.png", "tables.md"}


def state_of(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# The SBM trained by its objective (wrapped in DDP), and a fixed SBM (not wrapped: no gradients to sync).
@pytest.mark.parametrize("sbm_args", [[], ["--lambda-self", "0"]], ids=["trained-sbm", "fixed-sbm"])
def test_two_processes_sync_weights_and_only_rank0_writes(tmp_path, sbm_args):
    out, cache = tmp_path / "run", tmp_path / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "train.py", *TINY,
           "--epochs", "2", "--out", str(out), "--cache", str(cache), *sbm_args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d): (student weights digest [0-9a-f]+, SBM weights digest [0-9a-f]+)", proc.stdout))
    assert set(digests) == {"0", "1"}, proc.stdout[-2000:]
    assert digests["0"] == digests["1"]
    # Rank 0 alone logs, builds the cache and writes the run folder: one log line per epoch, no strays.
    assert len(re.findall(r"^epoch \d/2 ", proc.stdout, flags=re.M)) == 2
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert not list(cache.glob("*.tmp*"))


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    common = [*TINY, "--cache", str(tmp_path / "cache")]
    train.main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")])
    train.main([*common, "--epochs", "1", "--out", str(tmp_path / "broken")])
    train.main([*common, "--epochs", "2", "--out", str(tmp_path / "broken"), "--resume"])
    a, b = state_of(tmp_path / "straight"), state_of(tmp_path / "broken")
    assert b["epoch"] == 1
    assert_same_weights(a["student"], b["student"])
    assert_same_weights(a["sbm"], b["sbm"])


def test_a_fixed_sbm_does_not_move_and_gets_no_optimizer(tmp_path):
    # --lambda-self 0 with a detached eq. 4: nothing trains the SBM, so its k-means start is the teacher.
    common = [*TINY, "--cache", str(tmp_path / "cache"), "--lambda-self", "0", "--out", str(tmp_path / "run")]
    train.main([*common, "--epochs", "1"])
    after_one = state_of(tmp_path / "run")
    train.main([*common, "--epochs", "2", "--resume", "--schedule", "cosine", "--class-balance", "0.5"])
    after_two = state_of(tmp_path / "run")
    assert after_one["opt_sbm"] is None and after_two["opt_sbm"] is None
    assert_same_weights(after_one["sbm"], after_two["sbm"])
    assert not all(torch.equal(after_one["student"][k], after_two["student"][k]) for k in after_one["student"])


def test_sbm_with_colour_trains_and_its_pseudo_labels_are_scored(tmp_path):
    results = train.main([*TINY, "--cache", str(tmp_path / "cache"), "--epochs", "1", "--sbm-colour-weight", "1",
                          "--out", str(tmp_path / "run")])
    # evaluate.py rebuilt the SBM from the checkpoint's args: without the 3 colour channels its weights would not load.
    assert state_of(tmp_path / "run")["args"]["sbm_colour_weight"] == 1
    assert 0 <= results["sbm_pseudo_labels"]["miou"] <= 100


def test_cosine_schedule_decays_from_the_base_rate_to_zero():
    assert [train.learning_rate_factor(s, 10, "constant") for s in (0, 5, 10)] == [1.0, 1.0, 1.0]
    assert [train.learning_rate_factor(s, 10, "cosine") for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])


def test_end_to_end_on_eight_real_frames(tmp_path, fssod_root):
    out = tmp_path / "run"
    results = train.main(["--data", str(fssod_root), "--size", "64", "96", "--max-frames", "8", "--epochs", "1",
                          "--batch-size", "4", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert {p.name for p in out.iterdir()} == RUN_FILES
    saved = json.loads((out / "results.json").read_text())
    assert saved["mask_source"] == "superpixel" and saved["split"] == "test"
    assert 0 <= saved["strict"]["miou"] <= 100 and len(saved["strict"]["iou"]) == 11
    # The SBM's own pseudo-labels are scored too, on masks of all frames added to the cache.
    assert 0 <= saved["sbm_pseudo_labels"]["miou"] <= 100
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 90
    assert saved == json.loads(json.dumps(results))
    assert "Table 1" in (out / "tables.md").read_text()


def test_sbm_marginal_start_keeps_the_kmeans_cluster_masses(tmp_path):
    train.main([*TINY, "--epochs", "1", "--sbm-marginal", "start", "--out", str(tmp_path / "run")])
    marginal = state_of(tmp_path / "run")["sbm"]["cluster_marginal"]
    assert torch.isclose(marginal.sum(), torch.tensor(1.0)) and marginal.max() > 2 * marginal.min()


def test_sbm_merged_kmeans_start_gives_one_prototype_per_cluster(tmp_path):
    train.main([*TINY, "--epochs", "1", "--sbm-init", "kmeans-merge", "--sbm-over-clusters", "20",
                "--lambda-self", "0", "--out", str(tmp_path / "run")])
    prototypes = state_of(tmp_path / "run")["sbm"]["prototypes"]
    assert prototypes.shape[0] == 11 and torch.allclose(prototypes.norm(dim=1), torch.ones(11))


def test_a_complete_cache_never_builds_the_teacher(tmp_path, monkeypatch):
    common = [*TINY, "--epochs", "1", "--cache", str(tmp_path / "cache")]
    train.main([*common, "--out", str(tmp_path / "first")])

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was built although the cache holds every frame")

    monkeypatch.setattr(train, "teacher_for_run", no_teacher)
    monkeypatch.setattr("sam_teacher.make_teacher", no_teacher)
    train.main([*common, "--out", str(tmp_path / "second")])


def test_label_free_training_never_opens_a_mask_file(tmp_path, fssod_root, monkeypatch):
    opened = []
    real_open = builtins.open

    def spying_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    # Evaluation reads the masks by design; this test is about everything before it.
    monkeypatch.setattr(evaluate, "evaluate_checkpoint", lambda *a, **k: None)
    train.main(["--data", str(fssod_root), "--size", "64", "96", "--max-frames", "4", "--epochs", "1",
                "--batch-size", "2", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    assert any(p.endswith(".jpg") for p in opened), "the spy saw no frame being read"
    assert not [p for p in opened if "___fuse" in p]


@pytest.mark.parametrize("student", ["unet", "lraspp"])
def test_supervised_baseline_trains_and_scores(tmp_path, student):
    results = train.main([*TINY, "--supervised", "--student", student, "--epochs", "1", "--out", str(tmp_path / "sup")])
    assert results["mask_source"] is None and results["mapping"] == list(range(11))
    assert results["method"].startswith("LRASPP" if student == "lraspp" else "MobileNet-UNet")


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        train.main([*TINY, "--resume", "--out", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit):
        train.parse_args(["--source", "photoshop"])
    with pytest.raises(FileNotFoundError, match="not found"):
        train.main([*TINY, "--data", str(tmp_path / "no_such_folder"), "--out", str(tmp_path / "r")])


def test_a_size_the_student_cannot_take_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--size", "208", "304", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    assert "multiples of 32" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_a_second_round_takes_its_masks_from_the_first_rounds_student(tmp_path):
    from data import SyntheticScenes
    from sam_teacher import MaskCache, StudentTeacher, connected_regions
    train.main([*TINY, "--epochs", "1", "--lambda-self", "0", "--out", str(tmp_path / "one")])
    round_one = str(tmp_path / "one" / "checkpoint.pt")
    train.main([*TINY, "--epochs", "1", "--lambda-self", "0", "--source", "student", "--round-one", round_one,
                "--out", str(tmp_path / "two")])
    assert json.loads((tmp_path / "two" / "results.json").read_text())["mask_source"] == "student"

    # Each cached mask is one connected piece (of at least min_size pixels) of one cluster of round
    # one's predicted segmentation, plus the smaller pieces it absorbed; together they tile the frame.
    cache = MaskCache(str(tmp_path / "one" / "masks-64x96"), expected_settings={"source": "student"})
    frame = SyntheticScenes(8, size=(64, 96), seed=0, labels=False)[0]
    dense = cache.load(frame["name"])[0].dense().numpy()
    image = (frame["image"].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    teacher = StudentTeacher(round_one)
    assert (dense == teacher(image)).all()
    assert (dense.sum(0) == 1).all()
    segmentation = teacher.student(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255).argmax(1)[0]
    pieces = connected_regions(segmentation.numpy())
    large = np.flatnonzero(np.bincount(pieces.ravel()) >= teacher.settings["min_size"])
    for mask in dense:
        assert len(np.intersect1d(np.unique(pieces[mask]), large)) == 1


def test_a_second_round_refuses_a_run_trained_with_labels(tmp_path):
    from sam_teacher import StudentTeacher
    train.main([*TINY, "--epochs", "1", "--supervised", "--out", str(tmp_path / "supervised")])
    with pytest.raises(ValueError, match="trained with labels"):
        StudentTeacher(str(tmp_path / "supervised" / "checkpoint.pt"))
    with pytest.raises(SystemExit):
        train.parse_args([*TINY, "--source", "student"])
    with pytest.raises(SystemExit):
        train.parse_args([*TINY, "--round-one", str(tmp_path / "supervised" / "checkpoint.pt")])


def test_a_labelled_prior_names_each_region_by_the_supervised_students_majority(tmp_path):
    train.main([*TINY, "--epochs", "1", "--supervised", "--out", str(tmp_path / "supervised")])
    state = state_of(tmp_path / "supervised")
    # A prior that calls every pixel class 2: every region votes 2, so class 2's prototype is the mean
    # of all region embeddings and the ten classes no region voted for keep zero rows.
    state["student"]["classifier.bias"].fill_(-100.0)[2] = 100.0
    torch.save(state, tmp_path / "prior.pt")
    results = train.main([*TINY, "--epochs", "1", "--lambda-self", "0", "--sbm-prior", str(tmp_path / "prior.pt"),
                          "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    assert "uses labels" in results["method"]
    norms = state_of(tmp_path / "run")["sbm"]["prototypes"].norm(dim=1)
    assert torch.allclose(norms[2], torch.tensor(1.0)) and (norms[torch.arange(11) != 2] == 0).all()

    state["args"]["clusters"] = 40
    torch.save(state, tmp_path / "forty.pt")
    with pytest.raises(ValueError, match="not the 11 classes"):
        train.main([*TINY, "--epochs", "1", "--sbm-prior", str(tmp_path / "forty.pt"),
                    "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "forty")])
