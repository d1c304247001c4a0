"""The image groups of the MVTec LOCO table: all test images, and the normal images with each anomaly type."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["type_subsets"]


def type_subsets(types: Sequence[str], labels: Sequence[int]) -> list[tuple[str, np.ndarray]]:
    """``("total", all images)``, then ``(type, normal images | images of that type)`` per anomaly type, sorted.

    Args:
        types: anomaly type of each test image (its folder name).
        labels: 0 normal / 1 anomalous per image.

    Returns:
        ``(name, boolean mask over the images)`` pairs; a per-type metric is "normal vs that type".
    """
    t, y = np.asarray(types), np.asarray(labels)
    if len(t) != len(y):
        msg = f"types and labels differ in length: {len(t)}, {len(y)}"
        raise ValueError(msg)
    subsets = [("total", np.ones(len(y), dtype=bool))]
    subsets += [(name, (y == 0) | (t == name)) for name in sorted(set(t[y == 1].tolist()))]
    return subsets
