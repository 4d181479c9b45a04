"""sbm_study.py end to end on the real frames at a tiny size: every variant trains and is scored."""
import sam_teacher
import sbm_study
from data import open_dataset


def test_every_sbm_variant_is_scored(tmp_path, fssod_root, capsys):
    cache = tmp_path / "cache"
    sam_teacher.build_cache(open_dataset(fssod_root, "all", (64, 96)), sam_teacher.SuperpixelTeacher(), cache, progress=False)
    sbm_study.main(["--data", str(fssod_root), "--cache", str(cache), "--size", "64", "96", "--steps", "2", "--views", "2"])
    table = capsys.readouterr().out.split("| SBM objective |")[1]
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == len(sbm_study.VARIANTS)
