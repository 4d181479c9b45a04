"""studies/predict_speed.py on CPU: untrained student and LRASPP checkpoints segment the same few small frames
in turns, and the medians land in the JSON that RESULTS.md's predict numbers come from."""
import json

from PIL import Image

import predict
from stand_ins.synthetic import make_scene
from studies import predict_speed


def test_an_untrained_checkpoint_is_one_predict_reads(tmp_path):
    checkpoint = predict_speed.untrained_checkpoint(tmp_path / "lraspp.pt", "lraspp", size=(64, 96))
    args = predict.parse_args(["--checkpoint", str(checkpoint), "--input", str(tmp_path), "--out", "o"])
    assert predict.load_checkpoint(checkpoint)["args"]["size"] == [64, 96] and args.device == "cpu"


def test_the_student_and_lraspp_are_timed_on_the_same_frames_into_one_json(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(8):
        Image.fromarray(make_scene(i, (108, 192))[0]).save(frames / f"frame_{i}.jpg")
    (frames / "frame_9.jpg").write_bytes(b"not a jpeg")
    result = predict_speed.main(["--input", str(frames), "--size", "64", "96", "--rounds", "1",
                                 "--json", str(tmp_path / "predict.json"), "--workers", "0"])
    saved = json.loads((tmp_path / "predict.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["frames"] == 8 and saved["predict_args"] == ["--workers", "0"] and saved["commit"]
    for model in ("student", "lraspp"):
        assert saved[f"{model}_fps"] == saved[model]["fps"] > 0 and len(saved[model]["fps_runs"]) == 1
        assert saved[model]["limit"] in ("frames", "device", "writing")
        assert {"frames_seconds", "device_seconds", "writing_seconds"} <= saved[model].keys()
    assert "student / LRASPP:" in capsys.readouterr().out
