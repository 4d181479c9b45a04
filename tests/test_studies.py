"""region_study.py: merging regions by feature similarity, and the study end to end on the real frames."""
import torch

import region_study
import sam_teacher
from data import open_dataset
from sam_teacher import MaskSet


def four_quadrants() -> MaskSet:
    segments = torch.zeros(4, 4, dtype=torch.int64)
    segments[:2, 2:], segments[2:, :2], segments[2:, 2:] = 1, 2, 3
    return MaskSet(segments, torch.eye(4, dtype=torch.bool))


def test_merge_joins_similar_neighbours_and_keeps_dissimilar_apart():
    # Left half (segments 0 and 2) points one way, the right half (1 and 3) another, slightly tilted.
    features = torch.zeros(2, 4, 4)
    features[0, :, :2] = 1.0
    features[1, :, 2:] = 1.0
    features[0, :2, 2:] = 0.1
    merged = region_study.merge_by_features(four_quadrants(), features, threshold=0.5)
    assert len(merged) == 2
    assert merged.segments[0, 0] == merged.segments[3, 0] != merged.segments[0, 3] == merged.segments[3, 3]
    # Just above 0: only the identical left quadrants join; the tilted right ones stay apart.
    assert len(region_study.merge_by_features(four_quadrants(), features, threshold=0.001)) == 3


def test_every_region_source_is_scored(tmp_path, fssod_root, capsys):
    cache = tmp_path / "cache"
    sam_teacher.build_cache(open_dataset(fssod_root, "all", (64, 96)), sam_teacher.SuperpixelTeacher(), cache, progress=False)
    region_study.main(["--data", str(fssod_root), "--caches", str(cache), "--merge", "0.2", "--size", "64", "96",
                       "--clusters", "11", "--seeds", "0", "--colour-weights", "0", "1"])
    table = capsys.readouterr().out.split("| regions |")[1]
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 4
