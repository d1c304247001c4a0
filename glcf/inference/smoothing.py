"""Batched Gaussian smoothing of anomaly maps, equal to ``scipy.ndimage.gaussian_filter``.

The paper smooths the anomaly map with a Gaussian filter (Sec. III-E2); the authors computed their
normalisation statistics on maps smoothed with ``scipy.ndimage.gaussian_filter(sigma=4)``
(docs/model.md, Anomaly maps). That call is the reference this module reproduces on torch tensors.

Why hand-written: torchvision's ``gaussian_blur`` and ``F.pad(mode="reflect")`` mirror *about* the
edge pixel (``d c b | a b c d``, scipy's ``mirror``), while scipy's default ``reflect`` repeats the
edge pixel (``b a | a b c d | d c``, half-sample symmetric), and scipy sizes the kernel as
``radius = int(truncate * sigma + 0.5)``. Matching both on batched (GPU) tensors takes a few lines:
a separable correlation with an index-gathered symmetric padding, which also handles a radius larger
than the map (scipy then keeps reflecting).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur", "gaussian_kernel1d", "gaussian_radius", "scaled_sigma"]


REFERENCE_SIZE = 224  # the paper's input size: scoring.sigma is given in pixels at this size


def scaled_sigma(sigma: float, image_size: int) -> float:
    """Gaussian sigma in pixels for ``image_size`` given a sigma defined at 224 px (4 px in the paper)."""
    return float(sigma) * image_size / REFERENCE_SIZE


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    """Kernel half-width as scipy computes it: ``int(truncate * sigma + 0.5)``."""
    return int(truncate * float(sigma) + 0.5)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Normalised 1-D Gaussian kernel ``[2r + 1]``, computed in float64 like scipy, then cast."""
    radius = gaussian_radius(sigma, truncate)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    phi = torch.exp(-0.5 / (float(sigma) ** 2) * x**2)
    return (phi / phi.sum()).to(dtype)


def _symmetric_indices(n: int, radius: int, device: torch.device) -> Tensor:
    """Indices ``[n + 2r]`` of scipy's ``reflect`` extension (period ``2n``, edge pixel repeated)."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def gaussian_blur(maps: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Smooth the last two axes of ``maps`` like ``scipy.ndimage.gaussian_filter(mode="reflect")``.

    Equal to ``scipy.ndimage.gaussian_filter(m, sigma, truncate=truncate, mode="reflect")`` applied to
    every 2-D map ``m`` separately (float rounding aside). ``sigma == 0`` returns the input.

    Args:
        maps: ``[..., H, W]`` floating-point maps, any leading shape (e.g. ``[B, S, H, W]``).
        sigma: standard deviation in pixels (same along both axes).
        truncate: kernel radius in standard deviations (scipy's default 4).

    Returns:
        ``[..., H, W]`` smoothed maps, same dtype and device.

    Raises:
        ValueError: for a negative/non-finite sigma, a non-floating tensor or fewer than 2 axes.
    """
    if not (sigma >= 0 and sigma < float("inf")):
        msg = f"gaussian_blur: sigma must be a non-negative finite number, got {sigma!r}"
        raise ValueError(msg)
    if maps.ndim < 2 or not maps.is_floating_point():
        msg = f"gaussian_blur: expected a floating tensor [..., H, W], got {maps.dtype} of shape {tuple(maps.shape)}"
        raise ValueError(msg)
    if sigma == 0 or maps.numel() == 0:
        return maps
    *lead, h, w = maps.shape
    if torch.compiler.is_exporting():
        # onnxruntime ran the one-channel convolutions as eight output channels (its blocked layout) and
        # the padding as gathers: one constant matrix product per axis instead (the same weights)
        along_h = _constant(_blur_matrix(h, sigma, truncate), maps)
        along_w = _constant(_blur_matrix(w, sigma, truncate).T, maps)
        return (along_h @ maps.reshape(-1, h, w) @ along_w).reshape(*lead, h, w)
    kernel = gaussian_kernel1d(sigma, truncate, dtype=maps.dtype).to(maps.device)
    radius = (kernel.numel() - 1) // 2
    x = maps.reshape(-1, 1, h, w)
    x = x.index_select(2, _symmetric_indices(h, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))  # along H: [N, 1, H + 2r, W] -> [N, 1, H, W]
    x = x.index_select(3, _symmetric_indices(w, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))  # along W
    return x.reshape(*lead, h, w)


def _blur_matrix(n: int, sigma: float, truncate: float) -> np.ndarray:
    """``[n, n]`` float64: the smoothing of a length-``n`` axis (reflect padding, then the kernel) as a matrix.

    In numpy, as :func:`gaussian_kernel1d` and :func:`_symmetric_indices` compute it: a constant of an
    exported graph, not traced operations.
    """
    radius = gaussian_radius(sigma, truncate)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (float(sigma) ** 2) * x**2)
    kernel = phi / phi.sum()
    i = np.arange(-radius, n + radius) % (2 * n)
    source = np.where(i >= n, 2 * n - 1 - i, i)
    matrix = np.zeros((n, n))
    rows = np.arange(n)
    for t, k in enumerate(kernel):
        np.add.at(matrix, (rows, source[t : t + n]), k)  # output row o reads padded pixel o + t
    return matrix


def _constant(a: np.ndarray, like: Tensor) -> Tensor:
    """``a`` with ``like``'s dtype and device, a float32 one converted in numpy (a graph then stores it so)."""
    a = a.astype(np.float32) if like.dtype == torch.float32 else a
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.device, like.dtype)
