"""What changed between challenger and champion: thresholds, false alarms, per-defect AUROC and the
test images on which the two disagree. Pure logic on numbers, no MLflow, no plotting.

Two models' scores are on their own scales, so the disagreement of an image is measured as the
difference of its margins, each margin being (score - threshold) divided by the spread (standard
deviation) of that model's scores on the test split: an image one model puts far above its threshold
and the other far below comes first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFECT_PREFIX = "image_auroc_defect_"


@dataclass(frozen=True)
class Scored:
    """One model's image scores on the test split (in the split's order) and its threshold."""

    version: str
    threshold: float
    scores: np.ndarray

    def decisions(self) -> np.ndarray:
        return self.scores > self.threshold

    def margins(self) -> np.ndarray:
        spread = float(np.std(self.scores)) or 1.0
        return (self.scores - self.threshold) / spread


@dataclass(frozen=True)
class Pick:
    """A test image of the gallery and why it is there."""

    index: int
    why: str  # "disagree", "miss" or "false alarm"
    difference: float  # how strongly: margin difference (disagree) or distance from the threshold


def disagreements(challenger: Scored, champion: Scored, n: int) -> list[Pick]:
    """Up to ``n`` images where the two decide differently at their thresholds, largest difference first."""
    differ = np.flatnonzero(challenger.decisions() != champion.decisions())
    diff = challenger.margins() - champion.margins()
    ranked = sorted(differ.tolist(), key=lambda i: -abs(diff[i]))
    return [Pick(i, "disagree", float(diff[i])) for i in ranked[:n]]


def errors(challenger: Scored, labels: Sequence[int], n: int) -> list[Pick]:
    """Up to ``n`` of the challenger's misses (anomalies at or below its threshold) and false alarms
    (normal images above it), the farthest from the threshold first."""
    y = np.asarray(labels)
    flagged = challenger.decisions()
    margin = challenger.margins()
    wrong = np.flatnonzero(flagged != (y == 1))
    ranked = sorted(wrong.tolist(), key=lambda i: -abs(margin[i]))
    return [Pick(i, "false alarm" if y[i] == 0 else "miss", float(margin[i])) for i in ranked[:n]]


def false_alarms(scored: Scored, labels: Sequence[int]) -> tuple[int, int]:
    """Normal test images above the threshold, and the number of normal test images."""
    good = np.asarray(labels) == 0
    return int(np.sum(scored.decisions() & good)), int(np.sum(good))


def _fmt(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4f}"


def defect_rows(challenger: Mapping[str, float], champion: Mapping[str, float] | None) -> list[list[str]]:
    """Per defect type: image AUROC (the model's own score) of both and the change."""
    names = sorted(
        {k for k in challenger if k.startswith(DEFECT_PREFIX)}
        | {k for k in champion or {} if k.startswith(DEFECT_PREFIX)}
    )
    rows = []
    for key in names:
        new, old = challenger.get(key), (champion or {}).get(key)
        delta = None if new is None or old is None else new - old
        rows.append([key[len(DEFECT_PREFIX) :], _fmt(new), _fmt(old), "–" if delta is None else f"{delta:+.4f}"])
    return rows


def changes_markdown(
    challenger: Scored | None,
    champion: Scored | None,
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    labels: Sequence[int] | None,
) -> str:
    """The review's "what changed" sections: thresholds and false alarms, then per defect type."""
    lines = ["", "## Thresholds and false alarms on good images", ""]
    lines += ["| model | threshold | false-alarm rate (good) | false alarms |", "|---|---|---|---|"]
    for who, scored, metrics in (
        ("challenger", challenger, challenger_metrics),
        ("champion", champion, champion_metrics),
    ):
        if scored is None and metrics is None:
            continue
        rate = (metrics or {}).get("false_alarm_rate_good")  # as evaluated, when the test split was not scored here
        count = "–"
        if scored is not None and labels is not None and len(scored.scores):
            k, total = false_alarms(scored, labels)
            count, rate = f"{k} of {total}", (k / total if total else None)
        name = f"{who} v{scored.version}" if scored else who
        lines.append(f"| {name} | {_fmt(scored.threshold if scored else None)} | {_fmt(rate)} | {count} |")
    rows = defect_rows(challenger_metrics, champion_metrics)
    if rows:
        lines += ["", "## Image AUROC per defect type", "", "| defect | challenger | champion | delta |"]
        lines += ["|---|---|---|---|", *[f"| {' | '.join(r)} |" for r in rows]]
    return "\n".join(lines) + "\n"
