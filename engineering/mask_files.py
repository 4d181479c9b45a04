"""The file format of the mask cache: one frame's MaskSet as one deterministic `.npz` (engineering).

sam_teacher.py computes each frame's masks once and keeps them in a cache folder, one file a frame; this
is how such a file is laid out. The masks are stored as the segments they cut the frame into and which
mask covers which segment (a MaskSet, mask_set.py): about 1 MB a frame where dense masks would be
hundreds. The bytes depend on the masks alone, so that a resumed cache equals an uninterrupted one.
"""
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from mask_set import MaskSet

# Version of the layout; a cache written in another layout is refused with a rebuild hint.
FORMAT = 3
# Fixed zip timestamp so that the same masks always give the same bytes on disk (np.savez stamps the
# current time, which would make a resumed cache differ from an uninterrupted one).
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def encode_mask_set(masks: MaskSet) -> bytes:
    """masks: MaskSet -> the bytes of a deterministic .npz: its shape, segments (int32) and membership
    (one bit a mask and segment)."""
    arrays = {
        "shape": np.asarray([len(masks), masks.num_segments, *masks.segments.shape], dtype=np.int64),
        "segments": masks.segments.numpy().astype(np.int32),
        "membership": np.packbits(masks.membership.numpy().reshape(-1)),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, array, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def read_mask_set(path: str | Path) -> MaskSet:
    """A file written from `encode_mask_set` -> the MaskSet."""
    with np.load(path, allow_pickle=False) as stored:
        count, num_segments = (int(v) for v in stored["shape"][:2])
        membership = np.unpackbits(stored["membership"], count=count * num_segments)
        membership = membership.reshape(count, num_segments)
        return MaskSet(torch.from_numpy(stored["segments"].astype(np.int64)),
                       torch.from_numpy(membership.astype(bool)))
