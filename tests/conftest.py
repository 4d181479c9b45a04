"""Shared test setup: the repository root on sys.path, and the FSSOD folder beside the repository."""
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def fssod_root() -> Path:
    root = Path(__file__).parents[1].parent / "shared" / "fssod"
    if not (root / "images").is_dir():
        pytest.skip(f"FSSOD not found at {root}")
    return root
