"""Score anomaly maps stored the way the official MVTec LOCO AD evaluation expects them (docs/evaluation.md).

Maps: ``<maps_dir>/<category>/test/<type>/<stem>.tiff`` (float, any resolution; ``.tif``/``.npy`` too),
one per test image of ``<dataset_dir>/<category>``. Image AUROC uses the map maximum (as the
official script); sPRO and pixel AUROC use the maps at each image's original size. Unlike the
official script, a map of another size is resized (bilinear; counted in ``resized_maps`` and
warned about) instead of failing, and a missing map is an error naming the file (the official
script silently skips missing good maps).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from glcf.data.images import load_defect_masks
from glcf.data.loco import read_loco
from glcf.data.types import CategoryData
from glcf.metrics.auroc import image_auroc_by_type
from glcf.metrics.maps import MAP_SUFFIXES, find_map_file, read_anomaly_map, resize_map
from glcf.metrics.report import json_ready, limit_key
from glcf.metrics.spro import SPRO_LIMITS, loco_localization

logger = logging.getLogger(__name__)

__all__ = ["evaluate_loco_maps"]


def evaluate_loco_maps(
    maps_dir: str | Path,
    dataset_dir: str | Path,
    category: str,
    *,
    limits: Sequence[float] = SPRO_LIMITS,
    resize: bool = True,
) -> dict[str, Any]:
    """Evaluate a folder of LOCO anomaly maps against the dataset's ground truth.

    Args:
        maps_dir: base folder of the maps (holding ``<category>/test/...``).
        dataset_dir: MVTec LOCO AD base folder (holding ``<category>/``).
        category: the category to evaluate.
        limits: sPRO FPR limits.
        resize: resize maps whose size differs from the image's (else that is an error).

    Returns:
        JSON-ready dict: ``classification.auc_roc`` (total, per type, mean; map maximum),
        ``localization.auc_spro`` (``{type: {limit: value}}`` for each type, ``total`` and ``mean``),
        ``localization.pixel_auroc``, a flat ``summary`` with the sPRO at 0.05, ``n_images``,
        ``n_defects`` and ``resized_maps``.

    Raises:
        FileNotFoundError: a missing map (named).
        ValueError: unreadable or invalid maps, a size mismatch with ``resize=False``.
        glcf.data.DatasetLayoutError: the dataset does not follow the LOCO layout.
    """
    data = read_loco(Path(dataset_dir), category, check="header")
    base = Path(maps_dir) / category / "test"
    maps, defects, resized = _read_maps(data, base, resize)
    _warn_unused_maps(data, base)
    return _report(data, maps, defects, limits, resized)


def _read_maps(data: CategoryData, base: Path, resize: bool) -> tuple[list[np.ndarray], list[Any], int]:
    """The map of every test image at its image size, its ground-truth defects, and how many maps were resized."""
    maps: list[np.ndarray] = []
    defects = []
    resized = 0
    for s in tqdm(data.test, desc=f"loco-eval {data.category}", unit="map", leave=False):
        path = find_map_file(base / s.anomaly_type, s.stem)
        m = read_anomaly_map(path)
        if m.shape != (s.height, s.width):
            if not resize:
                msg = f"{path}: map size {m.shape[1]}x{m.shape[0]} differs from the image size {s.width}x{s.height}"
                raise ValueError(msg)
            m = resize_map(m, s.size)
            resized += 1
        maps.append(m)
        defects.append(load_defect_masks(s, data.defects) if s.label else [])
    if resized:
        logger.warning(
            "%d of %d anomaly maps were resized (bilinear) to their image size; the official script would reject them",
            resized,
            len(maps),
        )
    return maps, defects, resized


def _warn_unused_maps(data: CategoryData, base: Path) -> None:
    """A warning for map files under ``base`` that belong to no test image."""
    expected = {(s.anomaly_type, s.stem) for s in data.test}
    extra = sorted(
        p for p in base.glob("*/*") if p.suffix.lower() in MAP_SUFFIXES and (p.parent.name, p.stem) not in expected
    )
    if extra:
        logger.warning("%d map file(s) without a test image were not used, e.g. %s", len(extra), extra[0])


def _report(
    data: CategoryData, maps: list[np.ndarray], defects: list[Any], limits: Sequence[float], resized: int
) -> dict[str, Any]:
    """Image AUROC of the map maximum, sPRO and pixel AUROC, as the JSON-ready report."""
    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    auroc = image_auroc_by_type(types, labels, [float(m.max()) for m in maps])
    loc = loco_localization(maps, types, defects, limits, names=[str(s.path) for s in data.test])
    spro = {t: {limit_key(k): v for k, v in per.items()} for t, per in loc.auc.items()}
    n_images = {t: types.count(t) for t in sorted(set(types))}
    summary = {f"spro_0.05_{t}": per.get(0.05) for t, per in loc.auc.items()}
    summary |= {f"image_auroc_{t}": v for t, v in auroc.items()}
    summary["pixel_auroc"] = loc.pixel_auroc
    return json_ready(
        {
            "category": data.category,
            "n_images": n_images,
            "n_defects": loc.n_units,
            "resized_maps": resized,
            "map_resize": "bilinear to the image size" if resized else "none",
            "classification": {"image_score": "anomaly map maximum", "auc_roc": auroc},
            "localization": {"auc_spro": spro, "pixel_auroc": loc.pixel_auroc},
            "summary": summary,
        }
    )
