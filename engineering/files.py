"""Files written atomically, mistakes and Ctrl-C reported in one line (engineering, not the paper).

Every file that later work depends on (mask caches, checkpoints, results, predicted masks) is written
to a temporary name and renamed, so a killed process never leaves half a file. A mistake the user
can fix (a missing folder, an unreadable image, a wrong size) is raised by this project's own checks
as a FileNotFoundError or ValueError and printed by `report_user_errors` as one line. A command
stopped by Ctrl-C says in one line what it kept and how to continue (each command catches
KeyboardInterrupt around its long loop and exits with that line; `report_user_errors` says one line for
an interrupt anywhere else).
"""
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


def report_user_errors(main: Callable[[], Any]) -> None:
    """Run a command's `main`. A FileNotFoundError or ValueError raised by this project's own checks is
    a mistake the user can fix: it is printed as one line and the command exits with status 1. Anything
    else, or raised inside a library, is a bug and keeps its traceback. Ctrl-C outside a command's own
    handling stops it with one line instead of a traceback."""
    repository = Path(__file__).resolve().parents[1]
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        origin = Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve()
        if repository not in origin.parents:
            raise
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit("stopped (Ctrl-C)")
