"""Stage ``promote``: the promotion review of the newest challenger against the champion.

Both are compared on the same frozen test split, each with the metrics of its source run
(:attr:`pipelines.registry.VersionInfo.metrics`): when the champion was measured on another split
(its ``glcf.test_split_hash`` differs), it is re-evaluated on the challenger's split first. The
``champion`` alias moves only when the gate of ``params.register`` passes; the decision, its reason
and the champion's metrics it was compared with are version tags, both metric sets are in ``review.md``
(in MLflow and in ``reports/<category>/``), the outcome in ``reports/<category>/promotion.json``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.io import read_json, write_json, write_text
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.promotion import decide, review_markdown
from pipelines.review.decisions import REPORT_TAG, apply_gate
from pipelines.review.report import build_report
from pipelines.stages.common import load_prepared, numeric_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteResult:
    """The review's outcome."""

    model_name: str
    challenger_version: str
    champion_version: str | None
    promoted: bool
    reason: str
    review_markdown: str
    review_path: Path
    status: str = ""  # promoted, rejected or pending (awaiting approval)

    @property
    def pending(self) -> bool:
        return self.status == "pending"


def reevaluate(params: PipelineParams, data: Any, version: registry.VersionInfo, *, progress: bool) -> dict[str, float]:
    """Metrics of a registered version on ``data``'s test split (its own statistics and threshold)."""
    from glcf.metrics import Threshold
    from pipelines.stages.evaluate import evaluate_category

    with tempfile.TemporaryDirectory() as tmp:
        detector = registry.download_detector(version.name, version.version, Path(tmp))
        threshold = Threshold(detector.threshold, "stored", None, None, 0, float("nan"))
        result, _ = evaluate_category(
            _with_scoring(params, detector.config.scoring),  # the champion keeps its own scoring settings
            data,
            detector.model,
            detector.scorer.stats,
            threshold,
            Path(tmp) / "report",
            progress=progress,
            plots=False,
        )
    return numeric_summary(result.metrics)


def _with_scoring(params: PipelineParams, scoring: Any) -> PipelineParams:
    import dataclasses

    return dataclasses.replace(params, glcf=params.glcf.replace(scoring=scoring))


def _measured_champion(
    params: PipelineParams, paths: CategoryPaths, challenger: registry.VersionInfo, champion: Any, *, progress: bool
) -> tuple[dict[str, float] | None, bool]:
    """The champion's metrics on the challenger's test split, and whether it had to be re-evaluated."""
    if champion is None:
        return None, False
    if champion.split_hash == challenger.split_hash:
        return champion.metrics, False
    logger.info("%s: champion v%s was measured on another test split: re-evaluating", champion.name, champion.version)
    data, _ = load_prepared(params, paths)
    return reevaluate(params, data, champion, progress=progress), True


def _publish(
    params: PipelineParams, paths: CategoryPaths, version: registry.VersionInfo, review: str, decision: Any, status: str
) -> Path:
    """Write ``review.md`` and log the review (``promotion/``, ``review/v<version>/``) to the version's run."""
    import mlflow

    from pipelines import tracking

    name, number = version.name, version.version
    report_dir = paths.review_dir
    review_path = paths.report_dir / "review.md"
    write_text(review_path, review)
    write_text(report_dir / "review.md", review)
    with tracking.category_run(params, paths, stage="promote") as run:
        mlflow.log_text(review, "promotion/review.md")
        mlflow.log_dict(decision.to_dict(), "promotion/decision.json")
        mlflow.log_artifacts(str(report_dir), f"review/v{number}")
        mlflow.set_tag("glcf.promotion.decision", status)  # promoted, rejected or pending
    registry.tag_version(name, number, {REPORT_TAG: f"runs:/{run.info.run_id}/review/v{number}"})
    return review_path


def run_promote(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> PromoteResult:
    from pipelines import tracking

    registration = read_json(paths.registration, "registration record (run the register stage first)")
    tracking.configure_tracking(paths.root)
    name, version = registration["model_name"], str(registration["version"])
    challenger = registry.get_version(name, version)
    champion = registry.by_alias(name, registry.CHAMPION)
    current = champion.version if champion else None
    if champion is not None and champion.version == version:
        champion = None  # already the champion (a re-run of the review): judge it on its own
    champion_metrics, remeasured = _measured_champion(params, paths, challenger, champion, progress=progress)
    decision = decide(challenger.metrics, champion_metrics, params.register)
    manual = params.register.approval == "manual"
    review = review_markdown(
        decision,
        model_name=name,
        challenger_version=version,
        champion_version=champion.version if champion else None,
        split_hash=challenger.split_hash or "unknown",
        pending=manual,
    )
    if remeasured:
        review += f"\nThe champion was re-evaluated on this split (it was measured on split {champion.split_hash}).\n"
    report = build_report(params, paths, challenger, champion, champion_metrics, decision.challenger_metrics)
    review += report.markdown
    if manual and decision.promote:
        review += (
            f"\nApprove or reject: `glcf review approve {name} {version} --comment ...` (or the paused flow run).\n"
        )
    tags = {
        "glcf.promotion.reason": decision.reason,
        "glcf.promotion.champion_version": champion.version if champion else "none",
        "glcf.promotion.champion_metrics": champion_metrics or {},
        "glcf.promotion.reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    registry.tag_version(name, version, tags)
    previous = champion.version if champion else None
    approval = params.register.approval
    status = apply_gate(
        name, version, passed=decision.promote, reason=decision.reason, approval=approval, champion=current
    )
    review_path = _publish(params, paths, challenger, review, decision, status)
    record = {
        "model_name": name,
        "challenger_version": version,
        "champion_version_before": previous,
        "champion_version_after": version if status == "promoted" else previous,
        "promoted": status == "promoted",
        "status": status,
        "reason": decision.reason,
        "champion_remeasured": remeasured,
        "checks": [c.__dict__ for c in decision.checks],
    }
    write_json(paths.promotion, record)
    logger.info("%s v%s: %s%s", name, version, decision.reason, " (awaiting approval)" if status == "pending" else "")
    promoted = status == "promoted"
    return PromoteResult(name, version, previous, promoted, decision.reason, review, review_path, status)
