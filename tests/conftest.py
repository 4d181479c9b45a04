"""Shared test setup: the repository root on sys.path, a mismatched torchvision reported in one line before
collection, and the FSSOD folder beside the repository."""
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from engineering.files import torchvision_problem  # noqa: E402 (needs the root on sys.path)


def pytest_configure(config: pytest.Config) -> None:
    # test_studies.py imports studies/benchmark.py, which imports torchvision: a broken pair would stop
    # the collection with a traceback.
    problem = torchvision_problem()
    if problem is not None:
        pytest.exit(problem, returncode=1)


@pytest.fixture
def fssod_root() -> Path:
    root = Path(__file__).parents[1].parent / "shared" / "fssod"
    if not (root / "images").is_dir():
        pytest.skip(f"FSSOD not found at {root}")
    return root
