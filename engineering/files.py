"""Files written atomically, mistakes and Ctrl-C reported in one line (engineering, not the paper).

Every file that later work depends on (mask caches, checkpoints, results, predicted masks) is written
to a temporary name and renamed, so a killed process never leaves half a file. A mistake the user
can fix (a missing folder, an unreadable image, a wrong size) is raised by this project's own checks
as a FileNotFoundError or ValueError and printed by `report_user_errors` as one line. A command
stopped by Ctrl-C says in one line what it kept and how to continue (each command catches
KeyboardInterrupt around its long loop and exits with that line; `report_user_errors` says one line for
an interrupt anywhere else). A torchvision that does not fit the installed torch (PyPI's CUDA build beside
PyTorch's CPU one fails with "operator torchvision::nms does not exist") is reported in one line too,
with both versions and the command that reinstalls a matching pair (`torchvision_problem`).
"""
import importlib
import importlib.metadata
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it: a kill never leaves half a file."""
    path = str(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def check_rgb_image(image: np.ndarray, who: str = "A teacher") -> None:
    """Refuse anything but an (H, W, 3) uint8 RGB array, saying how to convert a float image."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8):
        raise ValueError(f"{who} takes an (H, W, 3) uint8 RGB image; got {type(image).__name__} "
                         f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}. Convert with "
                         "(x * 255).round() to uint8.")


def torchvision_problem() -> str | None:
    """None when torchvision imports; else one line: what is installed, why it fails, and the pip command
    that installs torch and torchvision again as one pair, from PyTorch's index for this torch's build
    (CPU, or its CUDA version). torchvision is imported lazily by the few paths that need it (LRASPP,
    MobileNetV3, predict.py's JPEG decoder), so a mismatched pair otherwise fails mid-run."""
    try:
        importlib.import_module("torchvision")
        return None
    except (ImportError, OSError, RuntimeError) as error:  # a missing package, library or operator
        import torch

        try:
            installed = f"torchvision {importlib.metadata.version('torchvision')}"
        except importlib.metadata.PackageNotFoundError:
            installed = "no torchvision"
        build = "cpu" if torch.version.cuda is None else "cu" + torch.version.cuda.replace(".", "")
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return (f"torch {torch.__version__} and {installed} do not work together (import torchvision: "
                f"{reason}); install the pair from one index: python3 -m pip install --force-reinstall torch "
                f"torchvision --index-url https://download.pytorch.org/whl/{build}")


def report_user_errors(main: Callable[[], Any]) -> None:
    """Run a command's `main`. A FileNotFoundError or ValueError raised by this project's own checks is
    a mistake the user can fix: it is printed as one line and the command exits with status 1. So is a
    torchvision that cannot be imported beside this torch (`torchvision_problem`). Anything else, or
    raised inside a library, is a bug and keeps its traceback. Ctrl-C outside a command's own handling
    stops it with one line instead of a traceback."""
    repository = Path(__file__).resolve().parents[1]
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        origin = Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve()
        if repository not in origin.parents:
            raise
        sys.exit(f"error: {error}")
    except (ImportError, OSError, RuntimeError):
        # Checked only once something failed: importing torchvision costs 1.4 s, and most commands
        # never need it. A torchvision that imports means the error is not this one: keep its traceback.
        problem = torchvision_problem()
        if problem is None:
            raise
        sys.exit(f"error: {problem}")
    except KeyboardInterrupt:
        sys.exit("stopped (Ctrl-C)")
