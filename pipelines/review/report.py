"""The review's "what changed" report, built by the promote stage: thresholds and false alarms of
both models, per-defect AUROC side by side, and a gallery of the test images where the challenger
and the champion disagree (with no champion: the challenger's misses and false alarms).

Both registered versions are downloaded and score the test split the way serving does; only the
gallery's images are scored again with their anomaly maps.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import registry
from pipelines.io import write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.review.compare import Pick, Scored, changes_markdown, disagreements, errors
from pipelines.review.gallery import plot_review_gallery
from pipelines.stages.common import load_prepared

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewReport:
    """The markdown sections and the files written into ``folder``."""

    markdown: str
    folder: Path
    picks: list[dict[str, Any]] = field(default_factory=list)


def _threshold(version: registry.VersionInfo) -> float:
    try:
        return float(version.tags.get("glcf.threshold", "nan"))
    except ValueError:
        return math.nan


def _score(detector: Any, files: list[Path], version: str) -> Scored:
    scores = np.array([d.score for d in detector.score(files)], dtype=np.float64)
    return Scored(version, detector.threshold, scores)


def _maps(detector: Any, files: list[Path], picks: list[Pick]) -> list[np.ndarray]:
    chosen = [files[p.index] for p in picks]
    return [d.anomaly_map for d in detector.score(chosen, return_maps=True, map_size="model")]


def build_report(
    params: PipelineParams,
    paths: CategoryPaths,
    challenger: registry.VersionInfo,
    champion: registry.VersionInfo | None,
    champion_metrics: dict[str, float] | None,
    challenger_metrics: dict[str, float],
) -> ReviewReport:
    """Write ``reports/<category>/review/`` (``gallery.png``, ``comparison.json``) and return the sections."""
    folder = paths.review_dir
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*"):  # an earlier review's files must not be logged with this one
        stale.unlink()
    n = params.register.review_gallery
    if n == 0:
        ch = Scored(challenger.version, _threshold(challenger), np.array([]))
        cp = Scored(champion.version, _threshold(champion), np.array([])) if champion else None
        markdown = changes_markdown(ch, cp, challenger_metrics, champion_metrics, None)
        write_json(folder / "comparison.json", {"challenger": _side(ch), "champion": _side(cp), "gallery": []})
        return ReviewReport(markdown, folder)
    data, _ = load_prepared(params, paths)
    files = [s.path for s in data.test]
    labels = [s.label for s in data.test]
    with tempfile.TemporaryDirectory() as tmp:
        ch_det = registry.download_detector(challenger.name, challenger.version, Path(tmp) / "challenger")
        ch = _score(ch_det, files, challenger.version)
        cp_det, cp = None, None
        if champion is not None:
            cp_det = registry.download_detector(champion.name, champion.version, Path(tmp) / "champion")
            cp = _score(cp_det, files, champion.version)
        picks = disagreements(ch, cp, n) if cp is not None else errors(ch, labels, n)
        models = [(f"challenger v{ch.version}", ch, _maps(ch_det, files, picks))]
        if cp_det is not None and cp is not None:
            models.append((f"champion v{cp.version}", cp, _maps(cp_det, files, picks)))
    plot_review_gallery(data.test, picks, models, folder / "gallery.png")
    rows = [_pick_row(data.test[p.index], p, ch, cp) for p in picks]
    write_json(folder / "comparison.json", {"challenger": _side(ch), "champion": _side(cp), "gallery": rows})
    markdown = changes_markdown(ch, cp, challenger_metrics, champion_metrics, labels)
    markdown += _gallery_markdown(rows, cp is not None, n)
    logger.info("%s v%s: review gallery of %d image(s)", challenger.name, challenger.version, len(picks))
    return ReviewReport(markdown, folder, rows)


def _side(scored: Scored | None) -> dict[str, Any] | None:
    if scored is None:
        return None
    return {"version": scored.version, "threshold": scored.threshold if math.isfinite(scored.threshold) else None}


def _pick_row(sample: Any, pick: Pick, ch: Scored, cp: Scored | None) -> dict[str, Any]:
    row = {
        "image": f"{sample.anomaly_type}/{sample.stem}",
        "why": pick.why,
        "difference": round(pick.difference, 4),
        "challenger_score": float(ch.scores[pick.index]),
        "challenger_anomalous": bool(ch.decisions()[pick.index]),
        "ground_truth": "good" if sample.label == 0 else "anomalous",
    }
    if cp is not None:
        row |= {"champion_score": float(cp.scores[pick.index]), "champion_anomalous": bool(cp.decisions()[pick.index])}
    return row


def _gallery_markdown(rows: list[dict[str, Any]], with_champion: bool, n: int) -> str:
    what = "where challenger and champion disagree" if with_champion else "the challenger's misses and false alarms"
    lines = ["", f"## Gallery: {len(rows)} test image(s) {what} (top {n})", ""]
    if not rows:
        return "\n".join([*lines, "None: both models decide alike on every test image.", ""])

    def verdict(flag: bool) -> str:
        return "anomalous" if flag else "normal"

    head = "| image | truth | why | challenger |" + (" champion |" if with_champion else "")
    lines += [head, "|---" * (4 + with_champion) + "|"]
    for r in rows:
        cells = [r["image"], r["ground_truth"], f"{r['why']} ({r['difference']:+.2f})"]
        cells.append(f"{r['challenger_score']:.4g} {verdict(r['challenger_anomalous'])}")
        if with_champion:
            cells.append(f"{r['champion_score']:.4g} {verdict(r['champion_anomalous'])}")
        lines.append(f"| {' | '.join(cells)} |")
    lines += ["", "The maps side by side: `gallery.png` in the review's artifacts (MLflow) and `reports/`."]
    return "\n".join(lines) + "\n"
