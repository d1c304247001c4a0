"""The layout memory's two hand-written searches: each grid cell against the same cell of every
training image (:func:`cell_distances`), and the worst pair of cells that no training image matches
together (:func:`worst_pair`). No library scores pairs of cells; both run in process and where torch
exports (ONNX, OpenVINO), in forms whose scores agree within float rounding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["cell_distances", "worst_pair"]

_PAIR_BLOCK = 1 << 20  # elements of one [B, rows, cols, N] block of pair sums, in process
_GRAPH_PAIR_BLOCK = 1 << 18  # the same for one image where torch exports (onnxruntime: fastest at 40-50 cells a side)
_BOUND_IMAGES = 4  # per cell, the best-matching training images whose sums bound every pair of it
_FIRST_PAIRS = 64  # pairs with the highest bounds, computed in full first: their best is the bar for the rest


def cell_distances(queries: Tensor, bank: Tensor) -> Tensor:
    """``[B, N, P]`` distance of each query's grid cell to the same cell of each bank map (``[*, C, P]``).

    In process ``cdist`` without its matrix-product shortcut: exact, and the same whatever the batch.
    The ONNX exporter has no ``cdist``: there the squares are ``|a|^2 + |b|^2 - 2 a.b``, one matrix
    product per cell (the sums written out would be a ``[P, B, N, C]`` block of differences). Both
    sides are first centred on the bank's mean of the cell (a constant of the graph), which leaves
    the distances unchanged and keeps the norms, and so the rounding of their difference, small.
    """
    if torch.compiler.is_exporting():
        mean = bank.mean(0, keepdim=True)
        a, b = (queries - mean).permute(2, 0, 1), (bank - mean).permute(2, 1, 0)  # [P, B, C], [P, C, N]
        squares = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(1, keepdim=True) - 2 * (a @ b)
        return squares.clamp_min(0).sqrt().permute(1, 2, 0)
    a, b = queries.permute(2, 0, 1), bank.permute(2, 0, 1)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").permute(1, 2, 0)


def worst_pair(d: Tensor, *, relation: bool = False) -> Tensor:
    """``[B]``: ``max_{i<j} min_n (d[:, n, i] + d[:, n, j])`` of scaled cell distances ``d`` ``[B, N, P]``.

    With ``relation`` each pair's separate best matches ``min_n d[:, n, i] + min_n d[:, n, j]`` are
    subtracted: only what the pair adds to its cells is scored. Hand-written (no library scores pairs
    of cells). In process, each image's pairs are first bounded through a few training images and
    only those that can be the worst are computed in full (:func:`_bounded_worst_pair`); where torch
    exports (no data-dependent shapes there), and for small banks, every pair (:func:`_blocked_worst_pair`).
    Both give the same value, bit for bit.
    """
    _, n, p = d.shape
    cells = d.transpose(1, 2)  # [B, P, N]
    alone = cells.amin(2)
    if p == 1:  # no pair: the cell with itself
        best = (cells[:, 0] + cells[:, 0]).amin(1)
        return best - alone[:, 0] - alone[:, 0] if relation else best
    if n > 2 * _BOUND_IMAGES and not torch.compiler.is_exporting():
        return torch.stack([_bounded_worst_pair(c, a, relation) for c, a in zip(cells, alone, strict=True)])
    return _blocked_worst_pair(cells, alone, relation)


def _blocked_worst_pair(cells: Tensor, alone: Tensor, relation: bool) -> Tensor:
    """:func:`worst_pair` over every pair of ``cells`` ``[B, P, N]`` (``alone`` ``[B, P]``: their minima).

    The pairs run in square blocks of cells, ``i`` in one block and ``j`` in the same or a later one:
    each block's ``[B, rows, cols, N]`` sums (``N`` innermost, so the minimum reads contiguous
    memory) stay small, only the pairs ``i < j`` are summed (about half of ``P x P``), and no
    ``P x P`` matrix is built, only each block's maximum. Where torch exports, a block's size depends
    on ``N`` alone (the batch is symbolic there): 45 blocks at ``N = 120``, ``P = 400``. Every pair
    is computed by the same operations whatever the blocks, so the score does not depend on them.
    """
    b, p, n = cells.shape
    budget = _GRAPH_PAIR_BLOCK if torch.compiler.is_exporting() else _PAIR_BLOCK // max(1, b)
    step = max(1, math.isqrt(budget // max(1, n)))
    worst = []
    for r0 in range(0, p, step):
        for c0 in range(r0, p, step):
            r1, c1 = min(p, r0 + step), min(p, c0 + step)
            best = (cells[:, r0:r1, None, :] + cells[:, None, c0:c1, :]).amin(3)  # [B, rows, cols]
            if relation:
                best = best - alone[:, r0:r1, None] - alone[:, None, c0:c1]
            if r0 == c0:  # a block on the diagonal: its pairs i < j only
                upper = torch.ones(r1 - r0, c1 - c0, dtype=torch.bool, device=cells.device).triu(1)
                best = best.masked_fill(~upper, -math.inf)
            worst.append(best.flatten(1).amax(1))
    return torch.stack(worst, 1).amax(1)


def _bounded_worst_pair(cells: Tensor, alone: Tensor, relation: bool) -> Tensor:
    """:func:`worst_pair` of one image (``cells`` ``[P, N]``, ``alone`` ``[P]``), the same value bit for bit,
    with the minimum over all ``N`` training images taken only for the pairs that can be the worst.

    A pair's sum through any one training image bounds its best joint match from above (the same
    float sums, and the minimum of a subset is never below the minimum of all). Through the
    :data:`_BOUND_IMAGES` best images of each of its two cells, every pair gets such a bound at
    ``P x P x 2k`` additions instead of ``P x P x N``; only the pairs whose bound reaches the best
    exact score found so far are computed in full (on normal and anomalous test images alike, under
    0.4% of them). Hand-written, as the search itself; where torch exports, the blocked search runs.
    """
    p = cells.shape[0]
    top = cells.topk(_BOUND_IMAGES, dim=1, largest=False).indices  # [P, k]
    others = cells.index_select(1, top.flatten()).view(p, p, -1)  # [j, i, k]: cell j in i's best images
    through = (cells.gather(1, top)[None] + others).amin(2)  # [j, i]: the pair's best sum through them
    bound = torch.minimum(through, through.T)
    if relation:
        bound = bound - alone[:, None] - alone[None, :]
    upper = torch.ones(p, p, dtype=torch.bool, device=cells.device).triu(1)
    bound = bound.masked_fill(~upper, -math.inf).flatten()

    def exact(pairs: Tensor) -> Tensor:  # as the blocked search computes each pair
        i, j = pairs // p, pairs % p
        best = (cells[i] + cells[j]).amin(1)
        return best - alone[i] - alone[j] if relation else best

    worst = exact(bound.topk(min(_FIRST_PAIRS, p * (p - 1) // 2)).indices).amax()
    for chunk in (bound >= worst).nonzero().squeeze(1).split(max(1, _PAIR_BLOCK // cells.shape[1])):
        worst = torch.maximum(worst, exact(chunk).amax())
    return worst
