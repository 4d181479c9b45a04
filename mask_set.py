"""The masks of one frame, as every module holds them: a `MaskSet` (paper section 2.1's M_1..M_N).

A teacher (SAM, or a region source without SAM weights) cuts a frame into N class-agnostic masks. N
dense (H, W) masks are large and mostly redundant: 950 superpixels of a 416 x 608 frame are 240 MB as
dense masks. A MaskSet stores instead the pieces (segments) the masks cut the frame into, and which
mask covers which piece: about 1 MB. Sums over a mask's pixels (eq. 1) and averages over the masks of
a pixel (eq. 2) then become sums over segments (sbm.py). Stands alone: numpy and torch only.
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class MaskSet:
    """The N masks of one frame as the segments they cut it into.

    segments: (H, W) int64, the segment of each pixel, -1 where no mask lies. All pixels of one
    segment are covered by exactly the same masks. membership: (N, S) bool, mask i covers segment s.
    Superpixels partition the frame, so every mask is one segment; SAM's masks overlap, and the
    pixels that masks 3 and 7 both cover form a segment of their own.
    """

    segments: torch.Tensor
    membership: torch.Tensor

    @classmethod
    def from_masks(cls, masks: np.ndarray | torch.Tensor) -> "MaskSet":
        """masks: (N, H, W) bool -> MaskSet of the non-empty ones, in their order."""
        masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W) bool; got shape {masks.shape}")
        masks = masks.astype(bool, copy=False)
        count, height, width = masks.shape
        flat = masks.reshape(count, height * width)
        nonempty = flat.any(axis=1)
        if not nonempty.all():
            flat = flat[nonempty]
        if len(flat) == 0:
            return cls(torch.full((height, width), -1, dtype=torch.int64),
                       torch.zeros(0, 0, dtype=torch.bool))
        mask_ids, pixels = np.nonzero(flat)
        if np.bincount(pixels, minlength=height * width).max() <= 1:
            # A partition (superpixels, oracle regions): mask i is segment i.
            segments = np.full(height * width, -1, dtype=np.int64)
            segments[pixels] = mask_ids
            return cls(torch.from_numpy(segments.reshape(height, width)),
                       torch.eye(len(flat), dtype=torch.bool))
        # A pixel's signature is the bit string of the masks covering it; equal signatures, one segment.
        signatures = np.packbits(flat, axis=0).T
        signatures = np.ascontiguousarray(signatures).view(np.dtype((np.void, signatures.shape[1])))[:, 0]
        unique, inverse = np.unique(signatures, return_inverse=True)
        membership = np.unpackbits(unique.view(np.uint8).reshape(len(unique), -1), axis=1,
                                   count=len(flat)).T.astype(bool)
        covered = membership.any(axis=0)
        # Renumber the segments so that uncovered pixels (no mask: the all-zero signature) get -1.
        new_ids = np.where(covered, np.cumsum(covered) - 1, -1)
        segments = new_ids[inverse.reshape(-1)].reshape(height, width)
        return cls(torch.from_numpy(segments.astype(np.int64)),
                   torch.from_numpy(np.ascontiguousarray(membership[:, covered])))

    def __len__(self) -> int:
        return self.membership.shape[0]

    @property
    def num_segments(self) -> int:
        return self.membership.shape[1]

    def segment_areas(self) -> torch.Tensor:
        """(S,) pixel count of every segment."""
        # Uncovered pixels go to an extra bin that is dropped; no boolean indexing, so no GPU sync.
        ids = torch.where(self.segments >= 0, self.segments, self.num_segments).flatten()
        counts = torch.zeros(self.num_segments + 1, dtype=torch.int64, device=ids.device)
        return counts.index_add_(0, ids, torch.ones_like(ids))[:-1]

    def areas(self) -> torch.Tensor:
        """(N,) pixel count of every mask."""
        return self.membership.to(torch.float32) @ self.segment_areas().to(torch.float32)

    def dense(self) -> torch.Tensor:
        """(N, H, W) bool: the masks themselves (for figures and tests; training never needs them)."""
        # A column of False appended last: segment -1 (no mask) indexes it.
        padded = torch.cat([self.membership, self.membership.new_zeros(len(self), 1)], dim=1)
        return padded[:, self.segments]

    def pin_memory(self) -> "MaskSet":
        """Page-locked copies, so that `to(cuda, non_blocking=True)` overlaps the copy (DataLoader
        calls it)."""
        return MaskSet(self.segments.pin_memory(), self.membership.pin_memory())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MaskSet":
        return MaskSet(self.segments.to(device, non_blocking=non_blocking),
                       self.membership.to(device, non_blocking=non_blocking))
