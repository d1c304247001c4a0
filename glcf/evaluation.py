"""Evaluate a category from its test scores and anomaly maps: ``metrics.json``, per-image CSV, PNG plots.

What is computed (metrics.md; spec section 10, items 12-13):

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

__all__ = ["EvaluationResult", "evaluate_model", "evaluate_predictions"]


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


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


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
    out = Path(out_dir)
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
    types = [s.anomaly_type for s in data.test]
    labels = [s.label for s in data.test]
    thr = threshold.value if isinstance(threshold, Threshold) else threshold

    metrics: dict[str, Any] = {
        "category": data.category,
        "format": data.format,
        "n_images": {t: types.count(t) for t in sorted(set(types))},
        "image_score": score_name,
        "image_auroc": image_auroc_by_type(types, labels, scores),
    }
    summary: dict[str, float] = {f"image_auroc_{k}": v for k, v in metrics["image_auroc"].items()}
    for name, values in (extra_scores or {}).items():
        metrics[f"image_auroc_{name}"] = image_auroc_by_type(types, labels, values)
        summary |= {f"image_auroc_{name}_{k}": v for k, v in metrics[f"image_auroc_{name}"].items()}
    loco_masks = loco_defect_masks(data) if data.format == "loco" else None  # read once: defect names and sPRO
    defects = image_defects(data, loco_masks)
    metrics["defect_types"], metrics["image_auroc_defect"] = _per_defect(data, defects, labels, scores, extra_scores)
    for defect, aucs in metrics["image_auroc_defect"].items():
        summary |= {_defect_key(score, defect): v for score, v in aucs.items()}

    full: list[np.ndarray] = []
    map_max = None
    loc = None
    if anomaly_maps is not None:
        full = [
            resize_map(np.asarray(anomaly_maps[i]), s.size)
            for i, s in enumerate(tqdm(data.test, desc="resize maps", unit="map", leave=False, disable=None))
        ]
        map_max = np.array([float(m.max()) for m in full])
        metrics["image_auroc_map_max"] = image_auroc_by_type(types, labels, map_max)
        summary |= {f"image_auroc_map_max_{k}": v for k, v in metrics["image_auroc_map_max"].items()}
        metrics["pixel_resolution"] = "original image size (maps resized bilinearly)"
        if data.has_masks:
            limits = spro_limits if data.format == "loco" else (pro_limit,)
            loc = _localization(data, full, limits, loco_masks)
            key = "spro" if data.format == "loco" else "pro"
            metrics["pixel_auroc"] = loc.pixel_auroc
            metrics[key] = {t: {limit_key(k): v for k, v in per.items()} for t, per in loc.auc.items()}
            metrics[f"n_{'defects' if key == 'spro' else 'regions'}"] = loc.n_units
            headline = 0.05 if key == "spro" and 0.05 in spro_limits else limits[0]
            summary["pixel_auroc"] = loc.pixel_auroc
            summary |= {f"{key}_{limit_key(headline)}_{t}": per[headline] for t, per in loc.auc.items()}
    if thr is not None:
        metrics["threshold"] = threshold.to_dict() if isinstance(threshold, Threshold) else {"value": thr}
        metrics["classification"] = classification_metrics_by_type(types, labels, scores, thr)
        summary |= {
            f"{m}_{t}": v[m] for t, v in metrics["classification"].items() for m in ("precision", "recall", "f1")
        }
        summary |= _false_alarms(scores, labels, threshold)
    metrics["summary"] = summary
    metrics = json_ready(metrics)

    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    rows = []
    for i, s in enumerate(data.test):
        row: dict[str, Any] = {"path": str(s.path), "label": s.label, "type": s.anomaly_type, "defect": defects[i]}
        row["score"] = float(scores[i])
        if map_max is not None:
            row["map_max"] = float(map_max[i])
        for name, values in (extra_scores or {}).items():
            row[f"score_{name}"] = float(values[i])
        if thr is not None:
            row["decision"] = int(scores[i] > thr)
        rows.append(row)
    csv_path = out / "per_image.csv"
    _write_csv(csv_path, rows)

    written: dict[str, Path] = {}
    if plots:
        from glcf import plots as P

        pdir = out / "plots"
        written["roc"] = P.plot_roc_curves(
            types, labels, scores, pdir / "roc.png", title=f"{data.category}: {score_name}"
        )
        written["score_histogram"] = P.plot_score_histograms(
            types, labels, scores, pdir / "score_histogram.png", threshold=thr, title=f"{data.category}: {score_name}"
        )
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
    logger.info("evaluation of %s written to %s: %s", data.category, out, summary)
    return EvaluationResult(metrics, metrics_path, csv_path, written)


def evaluate_model(
    model: Any,
    data: CategoryData,
    out_dir: str | Path,
    *,
    stats: Any = None,
    threshold: Threshold | float | None = None,
    threshold_method: str = "quantile",
    quantile: float = 0.99,
    k: float = 3.0,
    batch_size: int = 16,
    device: str = "auto",
    spro_limits: Sequence[float] = SPRO_LIMITS,
    gallery_size: int = 12,
    plots: bool = True,
    progress: bool = True,
) -> EvaluationResult:
    """Score a category's test split with a GLCF model and write the report (``evaluate_predictions``).

    Missing calibration is done here on the held-out normal images only (``data.validation``): the
    normalisation statistics with ``glcf.inference.calibrate`` when ``stats`` is None, and the
    threshold from those images' scores when ``threshold`` is None. Preprocessing is the single path
    of ``glcf.data.transforms`` with the model's ``mean``/``std``; scoring follows ``model.config.scoring``.

    Args:
        model: a ``GLCFModel`` (e.g. ``load_checkpoint(...).model``).
        data: the category.
        out_dir: report folder.
        stats: ``NormStats`` from a calibration, or None.
        threshold: calibrated threshold, or None.
        threshold_method: ``quantile`` or ``mean_std`` (when calibrating the threshold here).
        quantile: q of the ``quantile`` method.
        k: k of the ``mean_std`` method.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda``...
        spro_limits: sPRO FPR limits (LOCO).
        gallery_size: images in the gallery.
        plots: write the PNG plots.
        progress: show progress bars.
    """
    from glcf.data.dataset import ImageDataset
    from glcf.inference import calibrate_scored, predict
    from glcf.metrics.threshold import calibrate_threshold
    from glcf.scoring import AnomalyScorer

    scoring = model.config.scoring
    size = model.config.image_size

    def images(samples: Sequence[Any]) -> ImageDataset:
        return ImageDataset(samples, size, model.mean, model.std)

    normal_scores: np.ndarray | None = None
    if stats is None or threshold is None:
        if not data.validation:
            msg = f"{data.path}: no held-out normal images to calibrate on (empty validation split)"
            raise ValueError(msg)
        held_out = images(data.validation)
        if stats is None:
            logger.info("calibrating the statistics on %d held-out images (%s)", len(held_out), data.validation_source)
            stats, normal_scores = calibrate_scored(
                model, held_out, scoring, batch_size=batch_size, device=device, progress=progress
            )
    scorer = AnomalyScorer(scoring, stats, size)
    if threshold is None:
        if normal_scores is None:  # statistics given: score the held-out images with them
            normal = predict(model, held_out, scorer, batch_size=batch_size, device=device, progress=progress)
            normal_scores = normal.image_scores
        threshold = calibrate_threshold(normal_scores, threshold_method, quantile=quantile, k=k)  # type: ignore[arg-type]
    test = predict(
        model,
        images(data.test),
        scorer,
        batch_size=batch_size,
        device=device,
        progress=progress,
        keep_maps=True,
    )
    order = np.argsort(test.indices) if test.indices is not None else np.arange(len(data.test))
    return evaluate_predictions(
        data,
        test.image_scores[order],
        test.anomaly_maps[order],
        out_dir,
        threshold=threshold,
        score_name=f"{scoring.image_score} of the {scoring.mode} map",
        extra_scores={"local": test.local_scores[order], "global": test.global_scores[order]},
        spro_limits=spro_limits,
        plots=plots,
        gallery_size=gallery_size,
    )
