"""The review's gallery as a PNG: one row per test image, the image with its ground truth, then the
challenger's anomaly map and the champion's beside it, each titled with its score and decision.

Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no display, no network).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from glcf.data.images import load_image, load_mask
from glcf.data.types import Sample
from glcf.metrics.maps import resize_map
from pipelines.review.compare import Pick, Scored

_SIDE = 200


def _thumb(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = image.shape[:2]
    f = _SIDE / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), size


def _truth(ax: object, sample: Sample, size: tuple[int, int]) -> None:
    if not sample.mask_paths:
        return
    mask = Image.fromarray(load_mask(sample).astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    gt = np.asarray(mask) > 0
    if gt.any() and not gt.all():
        ax.contour(gt.astype(float), levels=[0.5], colors="cyan", linewidths=1.0)  # type: ignore[attr-defined]


def _verdict(scored: Scored, index: int) -> str:
    score = float(scored.scores[index])
    return f"{score:.4g} {'ANOMALOUS' if score > scored.threshold else 'normal'} (thr {scored.threshold:.4g})"


def plot_review_gallery(
    samples: Sequence[Sample],
    picks: Sequence[Pick],
    models: Sequence[tuple[str, Scored, Sequence[np.ndarray]]],
    path: Path,
) -> Path:
    """Write the gallery; ``models`` holds ``(label, scores, maps of the picked images)`` per model.

    Each model's maps share one colour range (its own), so a row compares where the two look, not
    their raw levels.
    """
    columns = 1 + len(models)
    rows = max(1, len(picks))
    fig = Figure(figsize=(2.8 * columns, 2.6 * rows))
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    ranges = [
        (min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)) if maps else (0.0, 1.0)
        for _, _, maps in models
    ]
    for r, pick in enumerate(picks):
        sample = samples[pick.index]
        thumb, size = _thumb(load_image(sample.path))
        ax = axes[r, 0]
        ax.imshow(thumb)
        _truth(ax, sample, size)
        ax.set_title(f"{sample.anomaly_type}/{sample.stem}\n{pick.why} ({pick.difference:+.2f})", fontsize=7)
        for c, ((label, scored, maps), (lo, hi)) in enumerate(zip(models, ranges, strict=True), start=1):
            ax = axes[r, c]
            ax.imshow(thumb)
            ax.imshow(resize_map(np.asarray(maps[r], dtype=np.float32), size), cmap="jet", alpha=0.5, vmin=lo, vmax=hi)
            _truth(ax, sample, size)
            ax.set_title(f"{label}\n{_verdict(scored, pick.index)}", fontsize=7)
    if not picks:
        axes[0, 0].text(0.5, 0.5, "no test image to show", ha="center", va="center")
    fig.suptitle("anomaly maps (jet), ground truth in cyan", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")
    return path
