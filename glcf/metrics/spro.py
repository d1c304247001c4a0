"""Saturated per-region overlap (sPRO) of MVTec LOCO AD (Bergmann et al., IJCV 2022; docs/evaluation.md).

Definitions (exactly those of the official evaluation, v2.0):

* every ground-truth PNG of an image is one defect, with its ``DefectSpec`` from
  ``defects_config.json``; its saturation is ``int(r * area)`` (relative) or ``min(s, area)``
  (absolute), with ``area`` the PNG's positive pixel count;
* sPRO of a defect at threshold ``t``: ``min(TP / saturation, 1)``, TP = its pixels with score ``> t``;
  a pixel inside two PNGs counts for both;
* the curve's y at ``t``: the mean over all defects of all anomalous images of the type;
* FPR at ``t``: over the pixels of the good test images plus the pixels of that type's anomalous
  images outside the union of the image's PNGs;
* the score: area under sPRO-vs-FPR up to a limit (0.05 in papers), divided by the limit.

Differences from the official script, all deliberate:

* it samples thresholds adaptively (error about 1e-4); this is exact over all distinct scores;
* its ROC code mishandles tied scores; ties here give the exact polyline (sPRO curves are not affected);
* a defect whose relative saturation truncates to 0 pixels yields ``0/0 = nan`` there (those
  thresholds are then dropped by its integration); here such a defect counts as saturated (sPRO 1)
  at every threshold, and a warning is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from glcf.data.types import DefectSpec
from glcf.metrics.curves import Curve
from glcf.metrics.localization import ImagePixels, LocalizationResult, localization_by_type

logger = logging.getLogger(__name__)

__all__ = ["SPRO_LIMITS", "loco_localization", "spro_auc", "spro_curve", "spro_pixels"]

SPRO_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)
Defects = Sequence[tuple[np.ndarray, DefectSpec]]


def spro_pixels(anomaly_map: np.ndarray, defects: Defects, anomaly_type: str = "", *, name: str = "") -> ImagePixels:
    """Split one image's scores into negatives, union positives and saturated defect units.

    Args:
        anomaly_map: ``[H, W]`` scores at the ground truth's resolution.
        defects: ``(mask [H, W] bool, DefectSpec)`` per ground-truth PNG; empty for a good image.
        anomaly_type: the image's type (``good``, ``logical_anomalies``, ``structural_anomalies``).
        name: image name for messages.
    """
    if anomaly_map.ndim != 2:
        msg = f"{name or 'anomaly map'}: must be 2-D, got shape {anomaly_map.shape}"
        raise ValueError(msg)
    union = np.zeros(anomaly_map.shape, dtype=bool)
    units: list[tuple[np.ndarray, int]] = []
    for k, (mask, spec) in enumerate(defects):
        if mask.shape != anomaly_map.shape:
            msg = f"{name}: defect {k} mask shape {mask.shape} differs from the map shape {anomaly_map.shape}"
            raise ValueError(msg)
        values = anomaly_map[mask]
        area = values.size
        if area == 0:
            msg = f"{name}: defect {k} ({spec.name}) has no pixel"
            raise ValueError(msg)
        saturation = spec.saturation_area(area)
        if saturation == 0:
            logger.warning(
                "%s: defect %d (%s) saturates at int(%s * %d) = 0 pixels: counted as saturated at every threshold",
                name,
                k,
                spec.name,
                spec.saturation_threshold,
                area,
            )
            units.append((values[:0], 0))
        else:
            units.append((np.partition(values, area - saturation)[area - saturation :], saturation))
        union |= mask
    return ImagePixels(anomaly_type, anomaly_map[~union], anomaly_map[union], units)


def loco_localization(
    anomaly_maps: Sequence[np.ndarray],
    anomaly_types: Sequence[str],
    defects: Sequence[Defects],
    limits: Sequence[float] = SPRO_LIMITS,
    *,
    names: Sequence[str] | None = None,
) -> LocalizationResult:
    """sPRO per LOCO anomaly type (``total`` pools all types; ``mean`` averages logical and structural).

    Args:
        anomaly_maps: one ``[H, W]`` map per test image, at the image's original size.
        anomaly_types: type of each image.
        defects: ground-truth defects of each image (empty for good images).
        limits: FPR limits.
        names: image names for messages.

    Returns:
        ``LocalizationResult`` whose ``auc`` holds the sPRO values and whose ``pixel_auroc`` is the
        AUROC over all test pixels (ground truth = union of the PNGs).
    """
    if not (len(anomaly_maps) == len(anomaly_types) == len(defects)):
        msg = f"{len(anomaly_maps)} maps, {len(anomaly_types)} types and {len(defects)} ground truths"
        raise ValueError(msg)
    names = names or [str(i) for i in range(len(anomaly_maps))]
    images = [
        spro_pixels(m, d, t, name=n) for m, t, d, n in zip(anomaly_maps, anomaly_types, defects, names, strict=True)
    ]
    return localization_by_type(images, limits)


def spro_curve(anomaly_maps: Sequence[np.ndarray], defects: Sequence[Defects]) -> Curve:
    """The exact sPRO-vs-FPR curve pooling all given images (good images: empty ``defects``)."""
    types = ["anomalous" if d else "good" for d in defects]
    return loco_localization(anomaly_maps, types, defects, (1.0,)).curves["total"]


def spro_auc(
    anomaly_maps: Sequence[np.ndarray], defects: Sequence[Defects], limits: Sequence[float] = (0.05,)
) -> dict[float, float]:
    """Normalised area under the pooled sPRO curve up to each limit."""
    curve = spro_curve(anomaly_maps, defects)
    return {float(lim): curve.auc(lim) for lim in limits}
