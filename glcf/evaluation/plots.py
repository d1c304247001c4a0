"""Evaluation figures written as PNG (issue 3): ROC curves per anomaly type, score histograms by label,
(s)PRO curves, and a gallery of test images with anomaly-map overlays and ground-truth contours.

Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg backend, without
pyplot, so that no global backend state is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from glcf.data.images import load_image, load_mask
from glcf.data.types import Sample
from glcf.metrics.curves import Curve
from glcf.metrics.maps import resize_map
from glcf.metrics.subsets import type_subsets

logger = logging.getLogger(__name__)

__all__ = ["plot_gallery", "plot_overlap_curves", "plot_roc_curves", "plot_score_histograms", "select_gallery"]

_DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", format="png")
    return path


def plot_roc_curves(
    types: Sequence[str], labels: Sequence[int], scores: Sequence[float], path: Path, *, title: str = "Image ROC"
) -> Path:
    """ROC of all test images and of the normal images vs each anomaly type, AUROC in the legend."""
    t, y, s = np.asarray(types), np.asarray(labels), np.asarray(scores, dtype=np.float64)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, keep in type_subsets(t, y):
        if len(np.unique(y[keep])) < 2:
            continue
        fpr, tpr, _ = roc_curve(y[keep], s[keep])
        auc = roc_auc_score(y[keep], s[keep])
        ax.plot(fpr, tpr, lw=2 if name == "total" else 1.3, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_score_histograms(
    types: Sequence[str],
    labels: Sequence[int],
    scores: Sequence[float],
    path: Path,
    *,
    threshold: float | None = None,
    title: str = "Image scores",
) -> Path:
    """Histograms of image scores: normal images, then each anomaly type; the threshold as a line."""
    t, y, s = np.asarray(types), np.asarray(labels), np.asarray(scores, dtype=np.float64)
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    bins = np.histogram_bin_edges(s, bins=min(40, max(10, len(s) // 3)))
    ax.hist(s[y == 0], bins=bins, alpha=0.6, label=f"normal (n={int(np.sum(y == 0))})", color="tab:green")
    for name in sorted(set(t[y == 1].tolist())):
        sel = s[(y == 1) & (t == name)]
        ax.hist(sel, bins=bins, alpha=0.5, label=f"{name} (n={sel.size})", histtype="stepfilled")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set(xlabel="image score", ylabel="images", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_overlap_curves(
    curves: dict[str, Curve], path: Path, *, limit: float, ylabel: str = "sPRO", title: str = ""
) -> Path:
    """(s)PRO-vs-FPR curves up to ``limit``, normalised area in the legend."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    for name, c in curves.items():
        keep = c.fpr <= limit
        x = np.append(c.fpr[keep], limit)
        y = np.append(c.y[keep], np.interp(limit, c.fpr, c.y))
        ax.plot(x, y, label=f"{name} ({c.auc(limit):.3f})")
    ax.set(xlabel="false positive rate", ylabel=ylabel, xlim=(0, limit), ylim=(0, 1.01), title=title or ylabel)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def select_gallery(samples: Sequence[Sample], scores: Sequence[float], n: int) -> list[int]:
    """Up to ``n`` test indices, round-robin over types; within a type the highest then lowest scores."""
    by_type: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_type.setdefault(s.anomaly_type, []).append(i)
    queues = []
    for idx in by_type.values():
        ranked = sorted(idx, key=lambda i: -scores[i])
        queues.append([ranked[k // 2] if k % 2 == 0 else ranked[-1 - k // 2] for k in range(len(ranked))])
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            while q and q[0] in chosen:
                q.pop(0)
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    return chosen


def _thumb(image: np.ndarray, side: int) -> tuple[int, int]:
    h, w = image.shape[:2]
    f = side / max(h, w)
    return max(1, round(w * f)), max(1, round(h * f))


def plot_gallery(
    samples: Sequence[Sample],
    maps: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    scores: Sequence[float],
    path: Path,
    *,
    n: int = 12,
    threshold: float | None = None,
    side: int = 256,
    columns: int = 4,
) -> Path:
    """Test images with their anomaly map overlaid and the ground-truth outline in cyan.

    Args:
        samples: test samples.
        maps: anomaly map per sample (any resolution), or a function ``index -> map``.
        scores: image score per sample (shown in the title with the decision).
        path: output PNG.
        n: number of images (chosen by ``select_gallery``).
        threshold: image threshold, to print each decision.
        side: longest side of each thumbnail in pixels.
        columns: images per row.
    """
    chosen = select_gallery(samples, scores, n)
    get = maps if callable(maps) else (lambda i: maps[i])
    shown = [np.asarray(get(i), dtype=np.float32) for i in chosen]
    lo = min((float(m.min()) for m in shown), default=0.0)
    hi = max((float(m.max()) for m in shown), default=1.0)
    rows = max(1, -(-len(chosen) // columns))
    fig = Figure(figsize=(3 * columns, 3.1 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i, amap in zip(axes, chosen, shown, strict=False):
        s = samples[i]
        image = load_image(s.path)
        size = _thumb(image, side)
        thumb = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        ax.imshow(thumb)
        ax.imshow(resize_map(amap, size), cmap="jet", alpha=0.45, vmin=lo, vmax=hi)
        if s.mask_paths:
            mask = Image.fromarray(load_mask(s).astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
            gt = np.asarray(mask) > 0
            if gt.any() and not gt.all():
                ax.contour(gt.astype(float), levels=[0.5], colors="cyan", linewidths=1.0)
        decision = "" if threshold is None else (" ANOMALOUS" if scores[i] > threshold else " normal")
        ax.set_title(f"{s.anomaly_type}/{s.stem}\nscore {scores[i]:.4g}{decision}", fontsize=7)
    fig.suptitle(f"map range [{lo:.3g}, {hi:.3g}] (jet), ground truth in cyan", fontsize=8)
    return _save(fig, path)
