"""Per-region overlap (PRO) of MVTec AD (Bergmann et al., CVPR 2020 / IJCV 2021; docs/evaluation.md).

Regions are the 8-connected components of each ground-truth mask (``scipy.ndimage.label`` with a
3x3 structuring element); the PRO at threshold ``t`` is the mean over all regions of all test images
of ``TP_region / area_region``; the FPR is taken over all defect-free pixels of all test images; the
score is the area under PRO-vs-FPR up to 0.3, divided by 0.3. Computed exactly over all distinct
scores, like the official MVTec AD script (which merges tied scores too). The authors' GLCF code
used 200 evenly spaced thresholds and rescaled the FPR axis by its maximum: not
reproduced.

Per-type values pool the good images with that type's images (the same convention as LOCO).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from glcf.metrics.curves import Curve
from glcf.metrics.localization import ImagePixels, LocalizationResult, localization_by_type

logger = logging.getLogger(__name__)

__all__ = ["PRO_LIMIT", "mvtec_localization", "pro_auc", "pro_curve", "pro_pixels"]

PRO_LIMIT = 0.3
_EIGHT = np.ones((3, 3), dtype=bool)


def pro_pixels(
    anomaly_map: np.ndarray, mask: np.ndarray | None, anomaly_type: str = "", *, name: str = ""
) -> ImagePixels:
    """Split one image's scores into negatives, positives and connected-region units.

    Args:
        anomaly_map: ``[H, W]`` scores.
        mask: ``[H, W]`` bool ground truth (``None`` or all ``False`` for a good image).
        anomaly_type: the image's type.
        name: image name for messages.
    """
    if anomaly_map.ndim != 2:
        msg = f"{name or 'anomaly map'}: must be 2-D, got shape {anomaly_map.shape}"
        raise ValueError(msg)
    if mask is None or not mask.any():
        return ImagePixels(anomaly_type, np.ravel(anomaly_map).copy(), anomaly_map[:0, :0].ravel())
    if mask.shape != anomaly_map.shape:
        msg = f"{name}: mask shape {mask.shape} differs from the map shape {anomaly_map.shape}"
        raise ValueError(msg)
    labels, n = ndimage.label(mask, structure=_EIGHT)
    flat = labels.ravel()
    inside = flat > 0
    scores = np.ravel(anomaly_map)[inside]
    ids = flat[inside]
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(1, n + 2))
    sorted_scores = scores[order]
    units = [(sorted_scores[bounds[k] : bounds[k + 1]], int(bounds[k + 1] - bounds[k])) for k in range(n)]
    return ImagePixels(anomaly_type, np.ravel(anomaly_map)[~inside], scores, units)


def mvtec_localization(
    anomaly_maps: Sequence[np.ndarray],
    anomaly_types: Sequence[str],
    masks: Sequence[np.ndarray | None],
    limits: Sequence[float] = (PRO_LIMIT,),
    *,
    names: Sequence[str] | None = None,
) -> LocalizationResult:
    """PRO for all test images (``total``, the official number) and per defect type, plus pixel AUROC.

    Args:
        anomaly_maps: one ``[H, W]`` map per test image at the mask's resolution.
        anomaly_types: type of each image.
        masks: bool ground truth per image (``None`` for good images).
        limits: FPR limits (0.3 is the field's).
        names: image names for messages.
    """
    if not (len(anomaly_maps) == len(anomaly_types) == len(masks)):
        msg = f"{len(anomaly_maps)} maps, {len(anomaly_types)} types and {len(masks)} masks"
        raise ValueError(msg)
    names = names or [str(i) for i in range(len(anomaly_maps))]
    images = [pro_pixels(m, g, t, name=n) for m, t, g, n in zip(anomaly_maps, anomaly_types, masks, names, strict=True)]
    return localization_by_type(images, limits)


def pro_curve(anomaly_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]) -> Curve:
    """The exact PRO-vs-FPR curve over all given images."""
    types = ["anomalous" if g is not None and g.any() else "good" for g in masks]
    return mvtec_localization(anomaly_maps, types, masks, (1.0,)).curves["total"]


def pro_auc(anomaly_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], limit: float = PRO_LIMIT) -> float:
    """Normalised area under the PRO curve up to ``limit`` (0.3)."""
    return pro_curve(anomaly_maps, masks).auc(limit)
