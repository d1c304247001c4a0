"""Nearest-neighbour memories of normal training images: patches (local) and the whole layout (global).

GLCF's decoders estimate features, and estimators generalise: they can reproduce a new combination
of normal parts well enough to call it normal. A memory of the normal images' own features cannot:

* the **patch memory** keeps the frozen encoder's stride-8 and stride-16 patch features of every
  training image (each averaged over its 3x3 neighbourhood, the stride-16 map up-sampled to stride
  8, as PatchCore does), thinned by a greedy k-centre coreset. A test patch scores its distance to
  the nearest remembered patch: a local map beside GLCF's local estimation map.
* the **layout memory** keeps one vector per training image: its whole feature map on a grid of
  cells, flattened, so position is part of the vector. The cells are the stride-16 grid
  (``layout_stride=16``: the stride-16 tap) or the finer stride-8 grid (``layout_stride=8``: the
  stride-8 tap beside the stride-16 tap up-sampled to it), which resolves parts of a few pixels.
  With ``layout_multiscale`` each of the two taps keeps its own grid and gives its own score: the
  stride-8 grid the relations of small parts (a mark, a level), the stride-16 grid those of large
  ones (a colour), which the finer cells split over many pairs. A stride-8 grid reads its taps
  from the input up-sampled by ``layout_zoom`` (the model computes them, :meth:`layout_cells` takes
  them as ``zoomed``): a part of a few pixels then fills a cell instead of sharing it. It gives an image-level global
  score that flags a relation between distant parts that no normal image shows, even when every
  part is normal on its own. Three ways to match (``layout_match``):

  - ``pairs``: for every pair of grid cells ``(i, j)`` the best joint match over the
    training images, ``min_n (d_n(i) + d_n(j))``, where ``d_n(i)`` is the distance of cell ``i`` to
    the same cell of training image ``n``, divided by that cell's typical nearest-neighbour distance
    among the training images (leave-one-out). The score is the worst pair. A pair of parts that
    each occur in normal images but never together has no training image that matches both;
  - ``relation`` (the default): the same pairs, each scored by how much worse its best joint match
    is than the two cells' separate best matches, ``min_n (d_n(i) + d_n(j)) - min_n d_n(i) -
    min_n d_n(j)``. A cell that is new on its own (a stain, a dent: the local branch's business)
    adds nothing, so what is left is the relation alone, and its noise on normal images is smaller;
  - ``whole``: the distance of the whole flattened map to the nearest training image. The noise of
    every cell adds up, so a relation between two small parts drowns in it.

* the **position memory** keeps, for every stride-4 position, the mean and the inverse covariance
  of the normal images' stride-4 and stride-8 features there (a Gaussian per position, as PaDiM
  does). A test patch scores its Mahalanobis distance at its own position: small, faint defects
  (a stain, a shallow dent) that the coarser patch memory and the estimation networks smooth over.

All banks are buffers of the model (saved with the trainable weights) and are filled after training
from the training images (:meth:`NormalMemory.fill`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glcf.config import LayoutMatch, LayoutStride
from glcf.model.pairs import cell_distances, worst_pair

__all__ = ["NormalMemory", "greedy_coreset"]

_CHUNK = 4096
_POSITION_RIDGE = 0.01  # added to every covariance's diagonal (PaDiM's choice): keeps it invertible
LAYOUT_MATCHES: tuple[str, ...] = get_args(LayoutMatch)
LAYOUT_STRIDES: tuple[int, ...] = get_args(LayoutStride)
#: The layout grids at each ``(layout_stride, layout_multiscale)``: per grid, the encoder taps (by index)
#: its cells hold, finest first (the others up-sampled to it). The one table that both the layout's
#: width (:meth:`NormalMemory.layout_dims`) and its maps follow.
LAYOUT_TAPS: dict[tuple[int, bool], tuple[tuple[int, ...], ...]] = {
    (16, False): ((2,),),
    (16, True): ((2,),),
    (8, False): ((1, 2),),
    (8, True): ((1,), (2,)),
}
_ZOOMED_TAP = 1  # the grids whose finest tap is the stride-8 one read the up-sampled input (layout_zoom)


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


def _pooled_pair(fine: Tensor, coarse: Tensor) -> Tensor:
    """Two taps, each 3x3-averaged, the coarse one up-sampled to the fine grid, side by side."""
    a = F.avg_pool2d(fine.float(), 3, 1, 1)
    b = F.avg_pool2d(coarse.float(), 3, 1, 1)
    b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([a, b], dim=1)


def _nearest(queries: Tensor, bank: Tensor) -> Tensor:
    """Euclidean distance of each query row to its nearest bank row (chunked).

    ``cdist`` finds the neighbour through a matrix product, whose rounding depends on the batch and
    the thread count; the distance to that neighbour is then taken exactly, so a score does not
    change with the batch it was computed in.
    """
    if torch.compiler.is_exporting():  # one chunk (symbolic batch), cdist's matrix-product form written out
        idx = (bank.pow(2).sum(1) - 2 * queries @ bank.T).argmin(dim=1)
        return (queries - bank[idx]).norm(dim=1)
    out = []
    for q in queries.split(_CHUNK):
        idx = torch.cdist(q, bank).argmin(dim=1)
        out.append((q - bank[idx]).norm(dim=1))
    return torch.cat(out) if out else queries.new_zeros(0)


class NormalMemory(nn.Module):
    """The two memories; empty until :meth:`fill` (the banks take the size of a loaded state).

    Args:
        patch_dim: channels of a patch feature (stride-8 plus stride-16 tap widths).
        layout_dim: length of a layout vector (per grid, channels x cells; the grids side by side).
        coreset_fraction: share of the training patches kept in the patch memory.
        cells: grid cells of a layout (of all its grids together).
        position_dim: channels of a position feature (stride-4 plus stride-8 tap widths).
        layout_stride: 16 (cells of the stride-16 tap) or 8 (cells of the stride-8 tap beside the
            stride-16 tap up-sampled to it).
        layout_multiscale: at stride 8, one grid per tap (each its own score) instead of one grid.
    """

    def __init__(
        self,
        patch_dim: int,
        layout_dim: int,
        *,
        coreset_fraction: float,
        layout_stride: int,
        layout_multiscale: bool = False,
        cells: int = 1,
        position_dim: int = 1,
    ) -> None:
        super().__init__()
        if layout_stride not in LAYOUT_STRIDES:
            msg = f"layout_stride: must be one of {LAYOUT_STRIDES}, got {layout_stride!r}"
            raise ValueError(msg)
        self.coreset_fraction = coreset_fraction
        self.layout_stride = layout_stride
        self.layout_taps = LAYOUT_TAPS[layout_stride, layout_multiscale]
        self.register_buffer("patch_bank", torch.zeros(0, patch_dim))
        self.register_buffer("layout_bank", torch.zeros(0, layout_dim))
        self.register_buffer("cell_scale", torch.ones(cells))
        self.register_buffer("position_mean", torch.zeros(0, position_dim))
        self.register_buffer("position_precision", torch.zeros(0, position_dim, position_dim))

    @property
    def zoomed_depth(self) -> int:
        """How many encoder taps, from the first, the grids that read the zoomed input need (0: none)."""
        return max((1 + max(g) for g in self.layout_taps if g[0] == _ZOOMED_TAP), default=0)

    @property
    def filled(self) -> bool:
        return self.patch_bank.shape[0] > 0 and self.layout_bank.shape[0] > 0

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        for name in ("patch_bank", "layout_bank", "cell_scale", "position_mean", "position_precision"):
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor) and stored.ndim == getattr(self, name).ndim:
                setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]

    @staticmethod
    def patch_features(taps: list[Tensor]) -> Tensor:
        """``[B, C2 + C3, h2, w2]``: stride-8 and stride-16 taps, 3x3-averaged, at the stride-8 grid."""
        return _pooled_pair(taps[1], taps[2])

    @staticmethod
    def position_features(taps: list[Tensor]) -> Tensor:
        """``[B, C1 + C2, h1, w1]``: stride-4 and stride-8 taps, 3x3-averaged, at the stride-4 grid."""
        return _pooled_pair(taps[0], taps[1])

    @staticmethod
    def layout_dims(
        channels: tuple[int, ...], image_size: int, stride: int, multiscale: bool, zoomed_size: int | None = None
    ) -> tuple[int, int]:
        """``(length, cells)`` of the layout vector of the encoder taps ``channels`` at ``image_size`` (the
        stride-8 grids at ``zoomed_size``, by default the same)."""
        sizes = {_ZOOMED_TAP: zoomed_size or image_size}
        grids = [  # tap i: stride 4 * 2^i
            (sum(channels[i] for i in g), (sizes.get(g[0], image_size) // (4 << g[0])) ** 2)
            for g in LAYOUT_TAPS[stride, multiscale]
        ]
        return sum(c * p for c, p in grids), sum(p for _, p in grids)

    def layout_cells(self, taps: list[Tensor], zoomed: list[Tensor] | None = None) -> list[Tensor]:
        """``[B, C_g, P_g]`` per layout grid: its map, one column per grid cell; the stride-8 grids from
        ``zoomed`` (the taps of the up-sampled input) when given."""
        grids = []
        for group in self.layout_taps:
            source = zoomed if zoomed is not None and group[0] == _ZOOMED_TAP else taps
            finest, *coarser = (source[i].float() for i in group)
            size = finest.shape[-2:]
            ups = [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in coarser]
            grids.append(torch.cat([finest, *ups], dim=1).flatten(2))
        return grids

    def layout_features(self, taps: list[Tensor], zoomed: list[Tensor] | None = None) -> Tensor:
        """``[B, sum_g C_g * P_g]``: the layout maps, flattened with their positions, side by side."""
        return torch.cat([g.flatten(1) for g in self.layout_cells(taps, zoomed)], dim=1)

    @torch.no_grad()
    def fill(self, taps_batches: Iterable[list[Tensor] | tuple[list[Tensor], list[Tensor]]], seed: int = 0) -> None:
        """Build the banks from the encoder taps of every training image: per batch its taps, or the pair
        ``(taps, zoomed)`` with the taps of its up-sampled input for the stride-8 layout grids."""
        patches, layouts, shapes = [], [], []
        gaussian = _PositionGaussian()
        for batch in taps_batches:
            taps, zoomed = (batch, None) if isinstance(batch[0], Tensor) else batch
            grids = self.layout_cells(taps, zoomed)
            shapes = [tuple(g.shape[1:]) for g in grids]
            gaussian.add(self.position_features(taps))
            p = self.patch_features(taps)
            patches.append(p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]).cpu())
            layouts.append(torch.cat([g.flatten(1) for g in grids], dim=1).cpu())
        if not patches:
            msg = "NormalMemory.fill: no training images"
            raise ValueError(msg)
        bank = torch.cat(patches)
        keep = greedy_coreset(bank, max(1, math.ceil(self.coreset_fraction * len(bank))), seed=seed)
        device = self.patch_bank.device
        self.patch_bank = bank[keep].contiguous().to(device)
        self.layout_bank = torch.cat(layouts).contiguous().to(device)
        self.cell_scale = torch.cat([self._typical_cell_distance(g) for g in self._grids(shapes)]).to(device)
        mean, precision = gaussian.result()
        self.position_mean, self.position_precision = mean.to(device), precision.to(device)

    def _grids(self, shapes: list[tuple[int, ...]]) -> list[Tensor]:
        """The layout bank as ``[N, C_g, P_g]`` maps, one per grid of ``shapes`` ``[(C_g, P_g), ...]``."""
        bank = self.layout_bank.float()
        parts = bank.split([c * p for c, p in shapes], dim=1)
        return [part.reshape(len(bank), c, p) for part, (c, p) in zip(parts, shapes, strict=True)]

    @staticmethod
    def _typical_cell_distance(grid: Tensor) -> Tensor:
        """``[P]``: mean over training maps ``[N, C, P]`` of each cell's distance to the nearest other one."""
        if len(grid) < 2:
            return torch.ones(grid.shape[-1])
        nearest = []
        for start in range(0, len(grid), 64):
            d = cell_distances(grid[start : start + 64], grid)
            rows = torch.arange(d.shape[0])
            d[rows, rows + start] = math.inf  # leave the map itself out
            nearest.append(d.amin(1))
        return torch.cat(nearest).mean(0).clamp_min(1e-6)

    def patch_distance(self, taps: list[Tensor]) -> Tensor:
        """``[B, 1, h2, w2]`` distance of every patch to the nearest normal patch."""
        p = self.patch_features(taps)
        b, c, h, w = p.shape
        d = _nearest(p.permute(0, 2, 3, 1).reshape(-1, c), self.patch_bank.float())
        return d.reshape(b, 1, h, w)

    def position_distance(self, taps: list[Tensor]) -> Tensor:
        """``[B, 1, h1, w1]`` Mahalanobis distance of every stride-4 patch to its position's normal Gaussian."""
        x = self.position_features(taps)
        b, _, h, w = x.shape
        y = x.flatten(2).permute(2, 0, 1) - self.position_mean[:, None, :]  # [P, B, C]
        d = (torch.bmm(y, self.position_precision) * y).sum(-1).clamp_min(0).sqrt()  # [P, B]
        return d.T.reshape(b, 1, h, w)

    def layout_distance(self, taps: list[Tensor], match: str, zoomed: list[Tensor] | None = None) -> Tensor:
        """``[B, G]`` layout scores of every image: per grid its worst pair of cells, or ``[B, 1]``: the
        distance of its whole map (every grid) to the nearest training image's. ``zoomed``: as
        :meth:`layout_cells` takes it (and as the memory was filled).

        ``match`` is a scoring choice (``scoring.layout_match``), not part of the memory: one filled
        memory serves both.
        """
        if match not in LAYOUT_MATCHES:
            msg = f"layout_match: must be one of {', '.join(LAYOUT_MATCHES)}, got {match!r}"
            raise ValueError(msg)
        if match == "whole":
            return _nearest(self.layout_features(taps, zoomed), self.layout_bank.float())[:, None]
        queries = self.layout_cells(taps, zoomed)
        shapes = [tuple(q.shape[1:]) for q in queries]
        scales = self.cell_scale.split([p for _, p in shapes])
        scores = [
            worst_pair(cell_distances(q, grid) / scale, relation=match == "relation")
            for q, grid, scale in zip(queries, self._grids(shapes), scales, strict=True)
        ]
        return torch.stack(scores, dim=1)


class _PositionGaussian:
    """Streaming mean and covariance per position (float64 sums) of ``[B, C, h, w]`` features."""

    def __init__(self) -> None:
        self.n = 0
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None

    def add(self, x: Tensor) -> None:
        y = x.detach().double().flatten(2).permute(2, 0, 1).cpu()  # [P, B, C]
        s, o = y.sum(1), torch.einsum("pbc,pbd->pcd", y, y)
        self.sum, self.outer = (s, o) if self.sum is None else (self.sum + s, self.outer + o)
        self.n += y.shape[1]

    def result(self) -> tuple[Tensor, Tensor]:
        """``(mean [P, C], precision [P, C, C])``: the inverse of the ridge-regularised covariance."""
        mean = self.sum / self.n
        cov = (self.outer - self.n * mean[:, :, None] * mean[:, None, :]) / max(1, self.n - 1)
        cov += _POSITION_RIDGE * torch.eye(cov.shape[-1], dtype=cov.dtype)
        return mean.float().contiguous(), torch.linalg.inv(cov).float().contiguous()
