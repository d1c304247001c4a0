"""The one deterministic preprocessing path for training, calibration and test (docs/model.md, Preprocessing).

``8-bit RGB -> resize to S x S -> float in [0, 1] -> (x - mean) / std``.

The resize is Pillow's ``BICUBIC`` filter on the 8-bit RGB image, straight to ``S x S`` (the aspect
ratio is not kept, as in the paper's loaders). Pillow widens the filter support when it shrinks an
image, so down-scaling is anti-aliased; the output is identical on every platform. The authors used
three different chains (256 bicubic -> 224 Lanczos for training, full size -> 224 Lanczos for MVTec
test, 256 -> 224 for LOCO test); this module replaces all of them. The mean and std are the
backbone's (``model.mean`` / ``model.std``; ImageNet statistics for the timm backbones we use).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from glcf.data.images import RESAMPLE, load_image, resize_rgb  # resize_rgb: torch-free, for the exported path
from glcf.data.types import Sample

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RESAMPLE", "normalize", "preprocess", "resize_rgb"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8 [S, S, 3]`` (or ``[B, S, S, 3]``) to a normalised float tensor ``[3, S, S]`` (``[B, 3, S, S]``)."""
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        msg = f"mean and std must be three values with std > 0, got mean={mean!r} std={std!r}"
        raise ValueError(msg)
    x = torch.from_numpy(np.asarray(image).astype(np.float32)).div_(255.0)  # astype: a writable copy
    x = x.movedim(-1, -3)  # [..., H, W, 3] -> [..., 3, H, W]
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def preprocess(
    image: np.ndarray | Path | Sample,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Load (if needed), resize and normalise one image.

    Args:
        image: ``uint8 [H, W, 3]`` RGB array, an image path or a ``Sample``.
        size: model input side ``S``.
        mean: per-channel mean of the backbone.
        std: per-channel std of the backbone.

    Returns:
        ``float32`` tensor ``[3, S, S]``.
    """
    if not isinstance(image, np.ndarray):
        image = load_image(image)
    return normalize(resize_rgb(image, size), mean, std)
