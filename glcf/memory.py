"""Nearest-neighbour memories of normal training images: patches (local) and the whole layout (global).

GLCF's decoders estimate features, and estimators generalise: they can reproduce a new combination
of normal parts well enough to call it normal. A memory of the normal images' own features cannot:

* the **patch memory** keeps the frozen encoder's stride-8 and stride-16 patch features of every
  training image (each averaged over its 3x3 neighbourhood, the stride-16 map up-sampled to stride
  8, as PatchCore does), thinned by a greedy k-centre coreset. A test patch scores its distance to
  the nearest remembered patch: a local map beside GLCF's local estimation map.
* the **layout memory** keeps one vector per training image: its whole stride-16 feature map,
  flattened, so position is part of the vector. A test image scores its distance to the nearest
  training image: an image-level global score that flags a relation between distant parts that no
  normal image shows, even when every part is normal on its own.

Both banks are buffers of the model (saved with the trainable weights) and are filled after training
from the training images (:meth:`NormalMemory.fill`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NormalMemory", "greedy_coreset"]

_CHUNK = 4096


def greedy_coreset(features: Tensor, size: int, seed: int = 0, proj_dim: int = 128) -> Tensor:
    """Indices of a greedy k-centre coreset of ``features`` ``[N, C]`` (PatchCore's subsampling).

    Hand-written: neither torch nor scikit-learn has k-centre selection. Distances are computed on a
    seeded random projection to ``proj_dim`` dimensions, as PatchCore does, to keep it cheap.
    """
    n = features.shape[0]
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if x.shape[1] > proj_dim:
        x = x @ torch.randn(x.shape[1], proj_dim, generator=gen) / math.sqrt(proj_dim)
    sq = x.pow(2).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    nearest = torch.full((n,), math.inf)
    for i in range(size):
        if i:
            chosen[i] = int(nearest.argmax())
        c = x[chosen[i]]
        torch.minimum(nearest, sq - 2 * (x @ c) + sq[chosen[i]], out=nearest)  # squared distances, no [N, C] copy
    return chosen


def _nearest(queries: Tensor, bank: Tensor) -> Tensor:
    """Euclidean distance of each query row to its nearest bank row (chunked)."""
    out = [torch.cdist(q, bank).amin(dim=1) for q in queries.split(_CHUNK)]
    return torch.cat(out) if out else queries.new_zeros(0)


class NormalMemory(nn.Module):
    """The two memories; empty until :meth:`fill` (the banks take the size of a loaded state).

    Args:
        patch_dim: channels of a patch feature (stride-8 plus stride-16 tap widths).
        layout_dim: length of a layout vector (stride-16 width x its grid cells).
        coreset_fraction: share of the training patches kept in the patch memory.
    """

    def __init__(self, patch_dim: int, layout_dim: int, coreset_fraction: float = 0.1) -> None:
        super().__init__()
        self.coreset_fraction = coreset_fraction
        self.register_buffer("patch_bank", torch.zeros(0, patch_dim))
        self.register_buffer("layout_bank", torch.zeros(0, layout_dim))

    @property
    def filled(self) -> bool:
        return self.patch_bank.shape[0] > 0 and self.layout_bank.shape[0] > 0

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        for name in ("patch_bank", "layout_bank"):
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor) and stored.ndim == 2:
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    @staticmethod
    def patch_features(taps: list[Tensor]) -> Tensor:
        """``[B, C2 + C3, h2, w2]``: stride-8 and stride-16 taps, 3x3-averaged, at the stride-8 grid."""
        a = F.avg_pool2d(taps[1].float(), 3, 1, 1)
        b = F.avg_pool2d(taps[2].float(), 3, 1, 1)
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([a, b], dim=1)

    @staticmethod
    def layout_features(taps: list[Tensor]) -> Tensor:
        """``[B, C3 * h3 * w3]``: the stride-16 tap, flattened with its positions."""
        return taps[2].float().flatten(1)

    @torch.no_grad()
    def fill(self, taps_batches: Iterable[list[Tensor]], seed: int = 0) -> None:
        """Build both banks from the encoder taps of every training image."""
        patches, layouts = [], []
        for taps in taps_batches:
            p = self.patch_features(taps)
            patches.append(p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]).cpu())
            layouts.append(self.layout_features(taps).cpu())
        if not patches:
            msg = "NormalMemory.fill: no training images"
            raise ValueError(msg)
        bank = torch.cat(patches)
        keep = greedy_coreset(bank, max(1, math.ceil(self.coreset_fraction * len(bank))), seed=seed)
        device = self.patch_bank.device
        self.patch_bank = bank[keep].contiguous().to(device)
        self.layout_bank = torch.cat(layouts).contiguous().to(device)

    def patch_distance(self, taps: list[Tensor]) -> Tensor:
        """``[B, 1, h2, w2]`` distance of every patch to the nearest normal patch."""
        p = self.patch_features(taps)
        b, c, h, w = p.shape
        d = _nearest(p.permute(0, 2, 3, 1).reshape(-1, c), self.patch_bank.float())
        return d.reshape(b, 1, h, w)

    def layout_distance(self, taps: list[Tensor]) -> Tensor:
        """``[B]`` distance of every image's layout to the nearest normal training image."""
        return _nearest(self.layout_features(taps), self.layout_bank.float())
