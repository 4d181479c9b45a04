"""engineering/files.py: one line for a mistake the user can fix, including a torchvision that does not fit
the installed torch."""
import importlib
import importlib.metadata
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from engineering.files import report_user_errors, torchvision_problem

NMS_ERROR = "operator torchvision::nms does not exist"


@pytest.fixture
def broken_torchvision(monkeypatch):
    """importlib fails on torchvision as a CPU torch beside PyPI's CUDA torchvision does; the installed
    torchvision is left alone."""
    real_import = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError(NMS_ERROR)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_a_working_torchvision_is_no_problem():
    assert torchvision_problem() is None


def test_a_mismatched_torchvision_is_one_line_with_versions_and_the_fix(broken_torchvision):
    problem = torchvision_problem()
    build = "cpu" if torch.version.cuda is None else "cu" + torch.version.cuda.replace(".", "")
    assert "\n" not in problem
    assert f"torch {torch.__version__} and torchvision {importlib.metadata.version('torchvision')}" in problem
    assert NMS_ERROR in problem
    assert problem.endswith("python3 -m pip install --force-reinstall torch torchvision --index-url "
                            f"https://download.pytorch.org/whl/{build}")


def test_report_user_errors_says_the_torchvision_problem_in_one_line(broken_torchvision):
    def needs_torchvision():
        importlib.import_module("torchvision")

    with pytest.raises(SystemExit) as stopped:
        report_user_errors(needs_torchvision)
    assert stopped.value.code == f"error: {torchvision_problem()}"


def test_report_user_errors_keeps_the_traceback_of_other_runtime_errors():
    def bug():
        raise RuntimeError("a bug, not the installation")

    with pytest.raises(RuntimeError, match="a bug"):
        report_user_errors(bug)


def test_the_test_command_stops_at_collection_with_one_line(tmp_path):
    # A torchvision package that fails as the mismatched one does, first on the path of a child pytest.
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text(f"raise RuntimeError({NMS_ERROR!r})\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO_ROOT / "tests" / "test_layout.py")], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and NMS_ERROR in lines[0] and "--force-reinstall torch torchvision" in lines[0]
