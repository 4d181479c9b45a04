"""train.py end to end on CPU: two processes, resume, cross-validation on the real frames, unlabelled
frames, errors, and no label in training."""
import builtins
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import evaluate
import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "64", "96", "--max-frames", "8", "--batch-size", "2", "--source", "superpixel"]
RUN_FILES = {"settings.json", "checkpoint.pt", "results.json", "classwise_iou.png", "qualitative.png",
             "tables.md"}


def state_of(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def run_command(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


# Runs train.py under torchrun and, on every rank, prints a digest of the student and the SBM it trained.
DIGESTS_OF_EACH_RANK = """
import hashlib, os, sys
sys.path.insert(0, os.getcwd())
import train

built = []
for name in ("build_student", "build_sbm"):
    def recording(*args, _build=getattr(train, name), **kwargs):
        built.append(_build(*args, **kwargs))
        return built[-1]
    setattr(train, name, recording)
train.main(sys.argv[1:])
digest = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for model in built
                                 for t in model.state_dict().values())).hexdigest()[:16]
sys.stdout.write(f"rank {os.environ['RANK']}: weights digest {digest}\\n")
"""


def test_two_processes_sync_weights_and_only_rank0_writes(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    (tmp_path / "digests.py").write_text(DIGESTS_OF_EACH_RANK)
    proc = run_command("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       str(tmp_path / "digests.py"),
                       *TINY, "--epochs", "2", "--out", str(out), "--cache", str(cache))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d): weights digest ([0-9a-f]+)", proc.stdout))
    assert set(digests) == {"0", "1"}, proc.stdout[-2000:]
    # The SBM's prototypes trained on both ranks (its gradients averaged by hand) and stayed identical,
    # as did the student's weights and BatchNorm statistics.
    assert digests["0"] == digests["1"]
    sbm_optimizer = state_of(out)["optimizers"][1]["state"][0]
    # 8 frames in global batches of 2 (1 on each rank): 4 steps an epoch, 2 epochs, as one process takes.
    assert int(sbm_optimizer["step"]) == 8 and sbm_optimizer["exp_avg"].abs().sum() > 0
    # Rank 0 alone logs, builds the cache and writes the run folder: one log line per epoch, no strays.
    assert len(re.findall(r"^epoch \d/2 ", proc.stdout, flags=re.M)) == 2
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert not list(cache.glob("*.tmp*")) and not list(out.glob(".*"))
    # The run ends on its score beside its pseudo-labels', and where its figures are.
    assert (re.search(r"student mIoU \d+\.\d+  FWIoU \d+\.\d+; the SBM's pseudo-labels it learnt from: "
                      r"mIoU \d+\.\d+", proc.stdout)
            and re.search(r"^figures: .*qualitative\.png", proc.stdout, flags=re.M))


# Runs train.py under torchrun with the student in eval mode (batch norms on their running statistics, no
# stochastic depth): what is left of a step is the same whatever the number of processes.
STUDENT_IN_EVAL_MODE = """
import os, sys
sys.path.insert(0, os.getcwd())
import torch
import train

build = train.build_student
def student_in_eval_mode(*args, **kwargs):
    student = build(*args, **kwargs)
    student.train = lambda mode=True: torch.nn.Module.train(student, False)
    return student
train.build_student = student_in_eval_mode
train.main(sys.argv[1:])
"""


def test_one_or_two_processes_take_the_same_step_to_the_same_weights(tmp_path):
    (tmp_path / "eval_mode.py").write_text(STUDENT_IN_EVAL_MODE)
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"run{processes}"
        proc = run_command("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                           str(tmp_path / "eval_mode.py"), "--size", "64", "96", "--max-frames", "4",
                           "--batch-size", "4", "--source", "superpixel", "--epochs", "1", "--out", str(out),
                           "--cache", str(tmp_path / "cache"))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[processes] = state_of(out)
    assert "global batch 4 frames a step, 2 on each of 2 processes" in proc.stdout
    one, two = runs[1], runs[2]
    # 4 frames, a global batch of 4: one step of each AdamW (the student's and the SBM's), either way.
    assert [[int(state["step"]) for state in optimizer["state"].values()][0]
            for optimizer in one["optimizers"] + two["optimizers"]] == [1, 1, 1, 1]
    # The same frames, views and losses: the same weights, to float rounding, where a step moves each weight
    # by about the learning rate, 1e-3. (Only one step: AdamW divides
    # each gradient by its own size, so after more steps the few near-zero gradients that rounding flips
    # the sign of move their weights by up to a learning rate.)
    for network in ("student", "sbm"):
        for key, value in one[network].items():
            assert torch.allclose(value.float(), two[network][key].float(), atol=1e-5, rtol=0), (network, key)


def test_each_process_takes_its_share_of_the_one_process_batches():
    for frames, batch in ((8, 4), (10, 4), (3, 4)):
        alone = list(train.GlobalBatches(frames, batch, seed=5, rank=0, world=1))
        assert len(alone) == -(-frames // batch) and all(len(b) == batch for b in alone)
        assert set(sum(alone, [])) == set(range(frames))  # every frame, the last batch filled up
        for world in (2, 4):
            shares = [list(train.GlobalBatches(frames, batch, seed=5, rank=r, world=world)) for r in range(world)]
            assert [sum((s[step] for s in shares), []) for step in range(len(alone))] == alone
    epochs = train.GlobalBatches(8, 4, seed=5, rank=0, world=1)
    first = list(epochs)
    epochs.set_epoch(1)
    assert list(epochs) != first


def test_a_global_batch_the_processes_cannot_share_is_refused(tmp_path):
    proc = run_command("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
                       *TINY, "--batch-size", "3", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode != 0
    assert "--batch-size 3 is the global batch, which 2 processes cannot share equally" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    common = [*TINY, "--cache", str(tmp_path / "cache")]
    train.main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")])
    train.main([*common, "--epochs", "1", "--out", str(tmp_path / "broken")])
    # --resume takes the run's own settings: only --epochs is given again.
    train.main(["--resume", "--epochs", "2", "--out", str(tmp_path / "broken")])
    a, b = state_of(tmp_path / "straight"), state_of(tmp_path / "broken")
    assert b["epoch"] == 1 and b["args"]["size"] == [64, 96]
    assert_same_weights(a["student"], b["student"])
    assert_same_weights(a["sbm"], b["sbm"])
    # Both optimizers, the student's and the SBM's, are saved and resumed.
    assert len(a["optimizers"]) == len(b["optimizers"]) == 2
    for saved_a, saved_b in zip(a["optimizers"], b["optimizers"]):
        for key in saved_a["state"]:
            assert_same_weights(saved_a["state"][key], saved_b["state"][key])


def test_resume_refuses_other_settings_and_a_new_run_never_overwrites_one(tmp_path):
    run = str(tmp_path / "run")
    train.main([*TINY, "--epochs", "1", "--out", run, "--cache", str(tmp_path / "cache")])
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit, match="was run with --data synthetic, not elsewhere"):
        train.main(["--resume", "--data", "elsewhere", "--out", run])
    with pytest.raises(SystemExit, match="was run with --lambda-bd 1.0, not 0.0"):
        train.main(["--resume", "--lambda-bd", "0", "--out", run])
    with pytest.raises(SystemExit, match="fewer than the run's 1"):
        train.main(["--resume", "--epochs", "0", "--out", run])
    with pytest.raises(SystemExit, match="already holds this run: pass --resume"):
        train.main([*TINY, "--epochs", "1", "--out", run])
    with pytest.raises(SystemExit, match="no run in"):
        train.main(["--resume", "--out", str(tmp_path / "nothing")])
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("sbm_lr", ["1e-5", "0"])
def test_two_optimizers_train_student_and_sbm_and_sbm_lr_0_keeps_the_sbm_fixed(tmp_path, sbm_lr):
    common = [*TINY, "--sbm-lr", sbm_lr, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    train.main([*common, "--epochs", "1"])
    after_one = state_of(tmp_path / "run")
    train.main(["--resume", "--epochs", "2", "--out", str(tmp_path / "run")])
    after_two = state_of(tmp_path / "run")
    assert len(after_two["optimizers"]) == (2 if sbm_lr != "0" else 1)
    assert torch.equal(after_one["sbm"]["prototypes"], after_two["sbm"]["prototypes"]) == (sbm_lr == "0")
    assert_same_weights({k: v for k, v in after_one["sbm"].items() if k != "prototypes"},
                        {k: v for k, v in after_two["sbm"].items() if k != "prototypes"})  # F stays frozen
    assert not all(torch.equal(after_one["student"][k], after_two["student"][k])
                   for k in after_one["student"])


def test_cross_validation_on_real_frames_pools_every_fold(tmp_path, fssod_root):
    out, cache = tmp_path / "run", tmp_path / "cache"
    results = train.main(["--data", str(fssod_root), "--size", "64", "96", "--folds", "2",
                          "--max-frames", "4", "--epochs", "1", "--batch-size", "4",
                          "--source", "superpixel", "--out", str(out), "--cache", str(cache)])
    assert ({p.name for p in out.iterdir()}
            == {"fold-0", "fold-1", *RUN_FILES} - {"settings.json", "checkpoint.pt"})
    folds = [json.loads((out / f"fold-{f}" / "results.json").read_text()) for f in (0, 1)]
    # Each fold is scored on its own test frames, named on its training frames; the pool sums both.
    assert (folds[0]["test_frames"][0] == "Frame 1  (1).jpg"
            and folds[1]["test_frames"][0] == "Frame 1  (49).jpg")
    assert not set(folds[0]["test_frames"]) & set(folds[1]["test_frames"])
    # --max-frames 4 chose 4 frames spread over the match before the folds divided them: each fold trains
    # on the other fold's 2 frames, and the pool says how many frames it scored.
    assert folds[0]["test_frames"] == ["Frame 1  (1).jpg", "Frame 1  (23).jpg"]
    assert results["evaluated_on"].startswith("4 labelled frames spread over the match (--max-frames 4)")
    assert results["folds"] == 2 and results["fold_miou"] == [f["strict"]["miou"] for f in folds]
    summed = sum(torch.tensor(f["confusion"]["strict"]) for f in folds)
    assert results["confusion"]["strict"] == summed.tolist()
    assert "2-fold cross-validation" in results["protocol"] and "black pixels ignored" in results["protocol"]
    # "Coaches & Officials" is black in the masks, so never present: IoU over the classes that occur.
    assert results["strict"]["iou"]["Coaches & Officials"] is None
    assert 0 <= results["pseudo_labels"]["miou"] <= 100
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert "Table 1" in (out / "tables.md").read_text()


def test_one_fold_at_a_time_then_the_pool(tmp_path, fssod_root):
    common = ["--data", str(fssod_root), "--size", "64", "96", "--folds", "2", "--max-frames", "2",
              "--epochs", "1", "--batch-size", "2", "--source", "superpixel", "--out", str(tmp_path / "run"),
              "--cache", str(tmp_path / "cache")]
    assert train.main([*common, "--fold", "1"]) is None
    assert not (tmp_path / "run" / "results.json").exists()
    assert train.main([*common, "--fold", "0"])["folds"] == 2


def test_a_complete_cache_never_builds_the_teacher(tmp_path, monkeypatch):
    common = [*TINY, "--epochs", "1", "--cache", str(tmp_path / "cache")]
    train.main([*common, "--out", str(tmp_path / "first")])

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was built although the cache holds every frame")

    monkeypatch.setattr(train, "make_teacher", no_teacher)
    monkeypatch.setattr("sam_teacher.make_teacher", no_teacher)
    train.main([*common, "--out", str(tmp_path / "second")])


def test_label_free_training_never_opens_a_mask_file(tmp_path, fssod_root, monkeypatch):
    opened = []
    real_open = builtins.open

    def spying_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    # Evaluation reads the masks by design (its check before training too); this test is about the rest.
    monkeypatch.setattr(evaluate, "evaluate_checkpoint", lambda *a, **k: None)
    monkeypatch.setattr(evaluate, "pool_folds", lambda *a, **k: None)
    monkeypatch.setattr(evaluate, "check_labelled_frames", lambda *a, **k: None)
    train.main(["--data", str(fssod_root), "--size", "64", "96", "--folds", "2", "--max-frames", "4",
                "--epochs", "1", "--batch-size", "2", "--out", str(tmp_path / "run"),
                "--cache", str(tmp_path / "cache")])
    assert any(p.endswith(".jpg") for p in opened), "the spy saw no frame being read"
    assert not [p for p in opened if "___fuse" in p]


@pytest.mark.parametrize("student", ["unet", "lraspp"])
def test_supervised_baseline_trains_and_scores(tmp_path, student):
    results = train.main([*TINY, "--supervised", "--student", student, "--epochs", "1",
                          "--out", str(tmp_path / "sup")])
    assert results["mask_source"] is None and results["mapping"] == list(range(11))
    assert results["method"].startswith("LRASPP" if student == "lraspp" else "MobileNet-UNet")


def test_a_labelled_prior_starts_the_sbm_from_the_supervised_students_classes(tmp_path):
    train.main([*TINY, "--epochs", "1", "--supervised", "--out", str(tmp_path / "supervised")])
    results = train.main([*TINY, "--epochs", "1", "--sbm-prior", str(tmp_path / "supervised"),
                          "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run")])
    assert "uses labels" in results["method"]
    with pytest.raises(FileNotFoundError, match="--sbm-prior: no checkpoint"):
        train.main([*TINY, "--epochs", "1", "--sbm-prior", str(tmp_path / "nothing"),
                    "--out", str(tmp_path / "x")])


def test_unlabelled_frames_train_and_their_predictions_are_drawn(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        from stand_ins.synthetic import make_scene
        Image.fromarray(make_scene(i, (64, 96))[0]).save(frames / f"clip_{i}.jpg")
    out = tmp_path / "run"
    assert train.main(["--data", str(frames), "--size", "64", "96", "--epochs", "1", "--batch-size", "2",
                       "--source", "superpixel", "--out", str(out),
                       "--cache", str(tmp_path / "cache")]) is None
    assert {p.name for p in out.iterdir()} == {"settings.json", "checkpoint.pt", "qualitative.png"}
    assert state_of(out)["args"]["unlabelled"]


def test_the_default_run_needs_no_download():
    # Synthetic scenes with superpixel masks: no PiDiNet or SAM weights, no dataset.
    args = train.parse_args([])
    assert (args.data, args.source, args.folds) == ("synthetic", "superpixel", 1)
    assert train.parse_args(["--data", "frames"]).source == "boundary"


def test_help_shows_defaults_and_whose_each_flag_is(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: 0.001)" in text and "(default: 5)" in text
    for action in train.build_parser()._actions[1:]:
        assert any(tag in action.help for tag in ("[paper", "[ablation", "[protocol", "[ours",
                                                  "[analysis")), action.dest


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(SystemExit):
        train.parse_args(["--source", "photoshop"])
    with pytest.raises(FileNotFoundError, match="not found"):
        train.main([*TINY, "--data", str(tmp_path / "no_such_folder"), "--out", str(tmp_path / "r")])
    with pytest.raises(FileNotFoundError, match="--sam-checkpoint"):
        train.main([*TINY, "--source", "sam", "--out", str(tmp_path / "sam")])


@pytest.mark.parametrize("size", [["208", "304"], ["0", "0"], ["-32", "64"]])
def test_a_size_the_student_cannot_take_is_refused_before_any_work(tmp_path, capsys, size):
    with pytest.raises(SystemExit):
        train.main(["--size", *size, "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    assert "positive multiples of 32" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_at_the_command_line_a_user_error_is_one_line(tmp_path):
    for command in (["train.py", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")],
                    ["sam_teacher.py", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")],
                    ["evaluate.py", "--checkpoint", str(tmp_path / "none.pt")],
                    ["sam_teacher.py", "--data", "synthetic", "--size", "0", "0",
                     "--out", str(tmp_path / "c")]):
        proc = run_command(*command)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert ("Traceback" not in proc.stderr and lines[-1].startswith(("error:", "usage:"))
                or "error:" in lines[-1]), proc.stderr
        assert len([line for line in lines if not line.startswith("usage")]) <= 2, proc.stderr


def test_figure_3_draws_every_stage_of_a_label_free_run(tmp_path):
    train.main([*TINY, "--epochs", "1", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    state = state_of(tmp_path / "run")
    test = evaluate.run_splits(state["args"])[1]
    mapping = torch.full((11,), 3).numpy()  # every cluster named Ground
    masks = evaluate.run_masks(state["args"], [test], "cpu")
    rows = evaluate.stage_rows(state, [test[0]], mapping, "cpu", masks)
    assert list(rows[0]) == ["input", "teacher's masks", "SBM pseudo-labels", "student", "ground truth"]
    assert rows[0]["teacher's masks"].shape == (64, 96, 3) and rows[0]["student"].shape == (64, 96)
    # Pseudo-labels and prediction are named by the same mapping.
    assert (rows[0]["SBM pseudo-labels"] == 3).all() and (rows[0]["student"] == 3).all()


def test_ctrl_c_stops_training_with_one_line_that_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "train.py", *TINY, "--epochs", "50", "--out", str(out),
                             "--cache", str(tmp_path / "cache")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:  # wait for the first finished epoch
        if line.startswith("epoch 1/50"):
            break
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 5 and proc.returncode == 1
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"stopped (Ctrl-C): {out} keeps every finished epoch, the mask cache every finished frame; continue "
        f"with: python3 train.py --resume --out {out}")
    assert state_of(out)["epoch"] >= 0
