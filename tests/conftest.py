"""Shared test setup: the repository root on sys.path, torch's CPU threads, and the FSSOD folder
beside the repository."""
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from utils import cpu_threads  # noqa: E402

# A thread per core while another program keeps a core busy makes the suite many times slower.
torch.set_num_threads(cpu_threads())


@pytest.fixture
def fssod_root() -> Path:
    root = Path(__file__).parents[1].parent / "shared" / "fssod"
    if not (root / "images").is_dir():
        pytest.skip(f"FSSOD not found at {root}")
    return root
