"""Evaluate a category from its test scores and anomaly maps: ``metrics.json``, per-image CSV, PNG plots.

What is computed (docs/evaluation.md):

* image AUROC, total and normal vs each anomaly type (``mean`` = logical/structural average for
  LOCO), twice and labelled: with the model's own image score (GLCF: map std) and with the map
  maximum (the official scripts' score);
* pixel AUROC over all pixels of all test images, **at each image's original resolution** (maps of
  any size are resized bilinearly to it), computed exactly from sorted scores;
* PRO (MVTec AD, FPR <= 0.3) or sPRO (LOCO, limits 0.01 ... 1.0; 0.05 is the headline), per type and in total;
* precision / recall / F1 / accuracy at a threshold calibrated on normal images only.

The folder layout has image-level labels only: pixel metrics are left out there.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from glcf.data.defects import defect_table, image_defects, loco_defect_masks
from glcf.data.images import load_mask
from glcf.data.types import CategoryData
from glcf.metrics.auroc import image_auroc_by_type
from glcf.metrics.localization import LocalizationResult
from glcf.metrics.maps import resize_map
from glcf.metrics.pro import PRO_LIMIT, mvtec_localization
from glcf.metrics.report import json_ready, limit_key
from glcf.metrics.spro import SPRO_LIMITS, loco_localization
from glcf.metrics.threshold import Threshold, classification_metrics_by_type

logger = logging.getLogger(__name__)

__all__ = ["EvaluationResult", "evaluate_predictions"]


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate_predictions`` wrote.

    Attributes:
        metrics: the content of ``metrics.json``; ``metrics["summary"]`` is a flat
            ``{name: float}`` ready for metric trackers.
        metrics_path: ``<out>/metrics.json``.
        csv_path: ``<out>/per_image.csv``.
        plots: plot name -> PNG path.
    """

    metrics: dict[str, Any]
    metrics_path: Path
    csv_path: Path
    plots: dict[str, Path]


def _localization(
    data: CategoryData, maps: list[np.ndarray], limits: Sequence[float], loco_masks: list | None
) -> LocalizationResult:
    types = [s.anomaly_type for s in data.test]
    names = [str(s.path) for s in data.test]
    if loco_masks is not None:
        return loco_localization(maps, types, loco_masks, limits, names=names)
    masks = [load_mask(s) if s.mask_paths else None for s in data.test]
    return mvtec_localization(maps, types, masks, limits, names=names)


def _false_alarms(scores: np.ndarray, labels: Sequence[int], threshold: Threshold | float) -> dict[str, float]:
    """False-alarm rate on the normal test images at the threshold, and its target (``1 - q``) if it has one."""
    value = threshold.value if isinstance(threshold, Threshold) else float(threshold)
    good = scores[np.asarray(labels) == 0]
    out = {"false_alarm_rate_good": float(np.mean(good > value)) if good.size else float("nan")}
    if isinstance(threshold, Threshold) and threshold.method in ("quantile", "gumbel") and threshold.quantile:
        out["false_alarm_target"] = 1.0 - threshold.quantile
    return out


def _defect_key(score: str, defect: str) -> str:
    """Flat metric name of a per-defect AUROC: ``image_auroc_defect_<d>`` (the model's score) or
    ``image_auroc_<score>_defect_<d>``; characters MLflow refuses in a metric name become ``_``."""
    d = re.sub(r"[^\w\-. /]", "_", defect)
    return f"image_auroc_defect_{d}" if score == "model" else f"image_auroc_{score}_defect_{d}"


def _per_defect(
    data: CategoryData,
    defects: Sequence[str],
    labels: Sequence[int],
    scores: np.ndarray,
    extra: dict[str, Sequence[float]] | None,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The defect table and the image AUROC of normal images vs each defect type, per score."""
    table = defect_table(data, defects)
    by_score = {"model": scores, **(extra or {})}
    aucs = {name: image_auroc_by_type(defects, labels, v) for name, v in by_score.items()}
    per_defect = {d: {name: aucs[name][d] for name in by_score} for d in table}
    kinds = {d: {"group": t.group, "relational": t.relational} for d, t in table.items()}
    return kinds, per_defect


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def evaluate_predictions(
    data: CategoryData,
    image_scores: Sequence[float],
    anomaly_maps: Sequence[np.ndarray] | np.ndarray | None,
    out_dir: str | Path,
    *,
    threshold: Threshold | float | None = None,
    score_name: str = "model",
    extra_scores: dict[str, Sequence[float]] | None = None,
    spro_limits: Sequence[float] = SPRO_LIMITS,
    pro_limit: float = PRO_LIMIT,
    plots: bool = True,
    gallery_size: int = 12,
) -> EvaluationResult:
    """Compute every metric of a category's test split and write the report.

    Args:
        data: the category (its ``test`` samples define the order of scores and maps).
        image_scores: ``[N]`` the model's own image score per test sample.
        anomaly_maps: ``[N, S, S]`` array or a list of ``[h_i, w_i]`` maps (any resolution), or None
            for image-level evaluation only.
        out_dir: folder for ``metrics.json``, ``per_image.csv`` and ``plots/``.
        threshold: decision threshold (calibrated on normal images) for precision/recall/F1.
        score_name: what the model score is, for the report (e.g. ``std``).
        extra_scores: further per-image scores for the CSV and their AUROC (e.g. ``local``, ``global``).
        spro_limits: sPRO FPR limits (LOCO).
        pro_limit: PRO FPR limit (MVTec AD).
        plots: write the PNG plots.
        gallery_size: images in the gallery.

    Returns:
        ``EvaluationResult``.

    Raises:
        ValueError: scores or maps whose count differs from the test split, or non-finite scores.
    """
    scores = _checked_scores(data, image_scores, anomaly_maps)
    thr = threshold.value if isinstance(threshold, Threshold) else threshold
    metrics = _header(data, score_name)
    loco_masks = loco_defect_masks(data) if data.format == "loco" else None  # read once: defect names and sPRO
    defects = image_defects(data, loco_masks)
    summary = _image_metrics(metrics, data, defects, scores, extra_scores)
    full = _full_size_maps(data, anomaly_maps) if anomaly_maps is not None else []
    loc = None
    if anomaly_maps is not None:
        loc = _map_metrics(metrics, summary, data, full, loco_masks, spro_limits, pro_limit)
    if thr is not None:
        _threshold_metrics(metrics, summary, data, scores, threshold)
    metrics["summary"] = summary
    metrics = json_ready(metrics)
    out = Path(out_dir)
    metrics_path = _write_metrics(out, metrics)
    csv_path = _write_csv(out / "per_image.csv", _per_image_rows(data, defects, scores, full, extra_scores, thr))
    written: dict[str, Path] = {}
    if plots:
        written = _write_plots(out / "plots", data, scores, full, loc, thr, score_name, pro_limit, gallery_size)
    logger.info("evaluation of %s written to %s: %s", data.category, out, summary)
    return EvaluationResult(metrics, metrics_path, csv_path, written)


def _header(data: CategoryData, score_name: str) -> dict[str, Any]:
    """The first entries of ``metrics.json``: category, layout, test images per type, what the image score is."""
    types = [s.anomaly_type for s in data.test]
    return {
        "category": data.category,
        "format": data.format,
        "n_images": {t: types.count(t) for t in sorted(set(types))},
        "image_score": score_name,
    }


def _full_size_maps(data: CategoryData, anomaly_maps: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Every map resized (bilinear) to its test image's original size."""
    return [
        resize_map(np.asarray(anomaly_maps[i]), s.size)
        for i, s in enumerate(tqdm(data.test, desc="resize maps", unit="map", leave=False, disable=None))
    ]


def _threshold_metrics(
    metrics: dict[str, Any],
    summary: dict[str, float],
    data: CategoryData,
    scores: np.ndarray,
    threshold: Threshold | float,
) -> None:
    """The threshold, precision / recall / F1 / accuracy per type and the false-alarm rate, into ``metrics``
    and ``summary``."""
    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    thr = threshold.value if isinstance(threshold, Threshold) else threshold
    metrics["threshold"] = threshold.to_dict() if isinstance(threshold, Threshold) else {"value": thr}
    metrics["classification"] = classification_metrics_by_type(types, labels, scores, thr)
    summary |= {f"{m}_{t}": v[m] for t, v in metrics["classification"].items() for m in ("precision", "recall", "f1")}
    summary |= _false_alarms(scores, labels, threshold)


def _write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """``out/metrics.json`` (``out`` is created)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def _checked_scores(
    data: CategoryData, image_scores: Sequence[float], anomaly_maps: Sequence[np.ndarray] | np.ndarray | None
) -> np.ndarray:
    """The image scores as float64, after checking their count, finiteness and the count of maps."""
    n = len(data.test)
    scores = np.asarray(image_scores, dtype=np.float64)
    if scores.shape != (n,):
        msg = f"image_scores: expected {n} scores (one per test image), got shape {scores.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(scores)):
        msg = f"image_scores: {int(np.sum(~np.isfinite(scores)))} non-finite score(s)"
        raise ValueError(msg)
    if anomaly_maps is not None and len(anomaly_maps) != n:
        msg = f"anomaly_maps: expected {n} maps (one per test image), got {len(anomaly_maps)}"
        raise ValueError(msg)
    return scores


def _image_metrics(
    metrics: dict[str, Any],
    data: CategoryData,
    defects: list[str],
    scores: np.ndarray,
    extra_scores: dict[str, Sequence[float]] | None,
) -> dict[str, float]:
    """Image AUROC per anomaly type and per defect type, of the score and the extra scores, into ``metrics``;
    returns the flat summary so far."""
    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    metrics["image_auroc"] = image_auroc_by_type(types, labels, scores)
    summary: dict[str, float] = {f"image_auroc_{k}": v for k, v in metrics["image_auroc"].items()}
    for name, values in (extra_scores or {}).items():
        metrics[f"image_auroc_{name}"] = image_auroc_by_type(types, labels, values)
        summary |= {f"image_auroc_{name}_{k}": v for k, v in metrics[f"image_auroc_{name}"].items()}
    metrics["defect_types"], metrics["image_auroc_defect"] = _per_defect(data, defects, labels, scores, extra_scores)
    for defect, aucs in metrics["image_auroc_defect"].items():
        summary |= {_defect_key(score, defect): v for score, v in aucs.items()}
    return summary


def _map_metrics(
    metrics: dict[str, Any],
    summary: dict[str, float],
    data: CategoryData,
    full: list[np.ndarray],
    loco_masks: Any,
    spro_limits: Sequence[float],
    pro_limit: float,
) -> LocalizationResult | None:
    """Map-max image AUROC and, with ground truth, pixel AUROC and PRO / sPRO, into ``metrics`` and ``summary``."""
    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    map_max = np.array([float(m.max()) for m in full])
    metrics["image_auroc_map_max"] = image_auroc_by_type(types, labels, map_max)
    summary |= {f"image_auroc_map_max_{k}": v for k, v in metrics["image_auroc_map_max"].items()}
    metrics["pixel_resolution"] = "original image size (maps resized bilinearly)"
    if not data.has_masks:
        return None
    limits = spro_limits if data.format == "loco" else (pro_limit,)
    loc = _localization(data, full, limits, loco_masks)
    key = "spro" if data.format == "loco" else "pro"
    metrics["pixel_auroc"] = loc.pixel_auroc
    metrics[key] = {t: {limit_key(k): v for k, v in per.items()} for t, per in loc.auc.items()}
    metrics[f"n_{'defects' if key == 'spro' else 'regions'}"] = loc.n_units
    headline = 0.05 if key == "spro" and 0.05 in spro_limits else limits[0]
    summary["pixel_auroc"] = loc.pixel_auroc
    summary |= {f"{key}_{limit_key(headline)}_{t}": per[headline] for t, per in loc.auc.items()}
    return loc


def _per_image_rows(
    data: CategoryData,
    defects: list[str],
    scores: np.ndarray,
    full: list[np.ndarray],
    extra_scores: dict[str, Sequence[float]] | None,
    thr: float | None,
) -> list[dict[str, Any]]:
    """One CSV row per test image: path, label, type, defect, score, map max, extra scores, decision.

    The path is relative to the dataset root, so that the file is the same in every clone.
    """
    map_max = [float(m.max()) for m in full] if full else None
    rows = []
    for i, s in enumerate(data.test):
        path = s.path.relative_to(data.root).as_posix() if s.path.is_relative_to(data.root) else str(s.path)
        row: dict[str, Any] = {"path": path, "label": s.label, "type": s.anomaly_type, "defect": defects[i]}
        row["score"] = float(scores[i])
        if map_max is not None:
            row["map_max"] = map_max[i]
        for name, values in (extra_scores or {}).items():
            row[f"score_{name}"] = float(values[i])
        if thr is not None:
            row["decision"] = int(scores[i] > thr)
        rows.append(row)
    return rows


def _write_plots(
    pdir: Path,
    data: CategoryData,
    scores: np.ndarray,
    full: list[np.ndarray],
    loc: LocalizationResult | None,
    thr: float | None,
    score_name: str,
    pro_limit: float,
    gallery_size: int,
) -> dict[str, Path]:
    """ROC curves, score histograms, PRO / sPRO curves and the gallery as PNGs under ``pdir``."""
    from glcf.evaluation import plots as P

    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    title = f"{data.category}: {score_name}"
    written = {
        "roc": P.plot_roc_curves(types, labels, scores, pdir / "roc.png", title=title),
        "score_histogram": P.plot_score_histograms(
            types, labels, scores, pdir / "score_histogram.png", threshold=thr, title=title
        ),
    }
    if loc is not None:
        key = "spro" if data.format == "loco" else "pro"
        lim = 0.05 if key == "spro" else pro_limit
        written[f"{key}_curves"] = P.plot_overlap_curves(
            loc.curves, pdir / f"{key}_curves.png", limit=lim, ylabel=key.upper().replace("S", "s", 1)
        )
    if full:
        written["gallery"] = P.plot_gallery(
            data.test, full, list(scores), pdir / "gallery.png", n=gallery_size, threshold=thr
        )
    return written
