"""The house: modules import each other without circles, and the ones readers copy run on their own."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The paper's modules and their support at the top; the stand-ins for SAM's masks and FSSOD, and the
# engineering around the paper, apart.
MODULES = {**{path.stem: path for path in ROOT.glob("*.py")},
           **{f"{folder}.{path.stem}": path for folder in ("stand_ins", "engineering")
              for path in (ROOT / folder).glob("[!_]*.py")}}


def sibling_imports(path: Path) -> set[str]:
    """The project modules a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names & MODULES.keys()


def test_a_reader_finds_the_papers_modules_first():
    paper = {"sam_teacher", "sbm", "student", "losses", "data", "train", "evaluate", "predict"}
    top = {name for name in MODULES if "." not in name}
    assert paper <= top and len(top) <= 12, sorted(top - paper)


def test_the_engineering_imports_no_chapter_of_the_paper():
    chapters = {"sam_teacher", "sbm", "student", "losses", "data", "train", "evaluate", "predict"}
    for name, path in MODULES.items():
        if name.startswith("engineering."):
            assert not sibling_imports(path) & chapters, name


def test_no_module_imports_itself_through_others():
    graph = {name: sibling_imports(path) for name, path in MODULES.items()}
    done, path = set(), []

    def visit(name: str) -> None:
        assert name not in path, f"import circle: {' -> '.join(path[path.index(name):] + [name])}"
        if name in done:
            return
        path.append(name)
        for imported in graph[name]:
            visit(imported)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


RUN_ON_A_TINY_TENSOR = {
    "sbm": """
import torch
from mask_set import MaskSet
from sbm import SemanticBridgingModule

class Backbone(torch.nn.Module):
    channels, weights_description = [4], "a tiny random network"
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    def forward(self, images):
        return [self.conv(images)]

masks = MaskSet.from_masks(torch.rand(5, 16, 24) > 0.5)
y_hat, covered = SemanticBridgingModule(Backbone(), [0], num_clusters=3)(torch.rand(1, 3, 16, 24), [masks])
assert y_hat.shape == (1, 3, 16, 24) and covered.shape == (1, 16, 24)
""",
    "losses": """
import torch
from losses import (augmentation_consistency_loss, boundary_consistency_loss, random_spatial_view,
                    sbm_boundary, sbm_consistency_loss, total_loss)

y_hat, student = torch.randn(2, 3, 16, 24), torch.randn(2, 3, 16, 24, requires_grad=True)
view, spatial = random_spatial_view(torch.rand(2, 3, 16, 24))
other, seen = spatial.invert(torch.randn(2, 3, 16, 24))
loss = total_loss(sbm_consistency_loss(y_hat, student),
                  boundary_consistency_loss(student, sbm_boundary(y_hat)),
                  augmentation_consistency_loss(student, other, seen))
loss.backward()
assert student.grad is not None
""",
    "student": """
import torch
from student import MobileNetUNet

assert MobileNetUNet(num_outputs=3, pretrained=False)(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)
""",
}


def needed_siblings(module: str) -> list[str]:
    """The sibling files a module's header says it needs beside it."""
    header = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    match = re.search(r"Needs beside it: ([^.]*(?:\.py[^.]*)*)\.", " ".join(header.split()))
    assert match, f"{module}.py's header does not say what it needs beside it"
    return re.findall(r"(\w+)\.py", match.group(1))


@pytest.mark.parametrize("module", sorted(RUN_ON_A_TINY_TENSOR))
def test_a_module_copied_alone_with_what_its_header_names_runs(tmp_path, module):
    for name in [module, *needed_siblings(module)]:
        (tmp_path / f"{name}.py").write_text(MODULES[name].read_text())
    # Run from the folder with only the copies in it: the repository is not on the path.
    proc = subprocess.run([sys.executable, "-c", RUN_ON_A_TINY_TENSOR[module]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(needed_siblings(module)) == sibling_imports(MODULES[module])
