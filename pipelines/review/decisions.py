"""Review decisions on registered versions: the gate's outcome, approval, rejection, expiry, rollback.

The state of a version's review is its tag ``glcf.review.status`` (``pending``, ``approved``,
``rejected``, ``expired``, ``rolled-back``); ``glcf.promotion.decision`` keeps the final outcome
(``promoted``, ``rejected``, ``pending``, ``expired``). ``@champion`` moves only here: when the gate
passes with ``register.approval: auto``, when a person approves, and on a rollback. Each of these
appends an event to the model's history (:mod:`pipelines.review.history`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines import registry
from pipelines.review import history
from pipelines.review.history import Event

logger = logging.getLogger(__name__)

STATUS_TAG = "glcf.review.status"
DECISION_TAG = "glcf.promotion.decision"
GATE_CHAMPION_TAG = "glcf.promotion.champion_version"
REASON_TAG = "glcf.promotion.reason"
REPORT_TAG = "glcf.review.report"
PENDING = "pending"


class ReviewError(ValueError):
    """A review action that cannot be done; the message names the model, the version and why."""


@dataclass(frozen=True)
class PendingReview:
    """A version waiting for a person."""

    model: str
    version: str
    champion_version: str | None
    reason: str
    since: str


def _champion(name: str) -> str | None:
    info = registry.by_alias(name, registry.CHAMPION)
    return info.version if info else None


def version_info(name: str, version: str) -> registry.VersionInfo:
    try:
        return registry.get_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            msg = f"{name} v{version}: no such registered model version"
            raise ReviewError(msg) from None
        raise


def _event(name: str, version: str, kind: str, before: str | None, after: str | None, **fields: str | None) -> Event:
    """An event acted by the current user (``by`` may name someone else: the gate, a Prefect form)."""
    actor = history.reviewer()
    values = {"gate": None, "reason": None, "by": actor, "via": "cli", "comment": "", **fields}
    return Event(
        at=history.now(),
        model=name,
        version=version,
        event=kind,
        champion_before=before,
        champion_after=after,
        recorded_by=actor,
        **values,  # type: ignore[arg-type]
    )


def apply_gate(name: str, version: str, *, passed: bool, reason: str, approval: str, champion: str | None) -> str:
    """Act on the gate's verdict: returns ``promoted``, ``pending`` or ``rejected``.

    ``champion`` is the version that held ``@champion`` when the gate judged (None: none).
    """
    gate = "passed" if passed else "failed"
    if not passed:
        outcome, kind, after = "rejected", "gate", champion
    elif approval == "manual" and champion != version:  # a re-run on the champion needs no approval
        outcome, kind, after = PENDING, PENDING, champion
    else:
        outcome, kind, after = "promoted", "gate", version
        registry.set_alias(name, registry.CHAMPION, version)
    tags = {DECISION_TAG: outcome, STATUS_TAG: PENDING if outcome == PENDING else f"gate-{gate}"}
    registry.tag_version(name, version, tags)
    history.append(_event(name, version, kind, champion, after, gate=gate, reason=reason, by="gate", via="pipeline"))
    return outcome


def pending_reviews(prefix: str | None = None) -> list[PendingReview]:
    """Versions awaiting a decision, of every registered model (or of those named ``<prefix>-...``)."""
    found = MlflowClient().search_model_versions(f"tags.`{STATUS_TAG}` = '{PENDING}'")
    out = []
    for mv in found:
        if prefix and not mv.name.startswith(f"{prefix}-"):
            continue
        tags = dict(mv.tags or {})
        gate_champion = tags.get(GATE_CHAMPION_TAG, "none")
        out.append(
            PendingReview(
                mv.name,
                str(mv.version),
                None if gate_champion == "none" else gate_champion,
                tags.get(REASON_TAG, ""),
                tags.get("glcf.promotion.reviewed_at", ""),
            )
        )
    return sorted(out, key=lambda p: (p.model, int(p.version)))


def _require_pending(name: str, version: str) -> registry.VersionInfo:
    info = version_info(name, version)
    status = info.tags.get(STATUS_TAG)
    if status != PENDING:
        msg = f"{name} v{version}: not pending review (status: {status or 'never reviewed'})"
        raise ReviewError(msg)
    return info


def approve(name: str, version: str, comment: str, *, via: str = "cli", by: str | None = None) -> Event:
    """Move ``@champion`` to a pending version and record who approved it."""
    info = _require_pending(name, version)
    before = _champion(name)
    judged = info.tags.get(GATE_CHAMPION_TAG, "none")
    if (before or "none") != judged:
        msg = (
            f"{name} v{version}: the gate compared it with champion {judged}, but the champion is now "
            f"{before or 'none'}; re-run the promote stage to review it against the current champion"
        )
        raise ReviewError(msg)
    registry.set_alias(name, registry.CHAMPION, version)
    return _close(info, "approved", "promoted", comment, via, by, before, version)


def reject(name: str, version: str, comment: str, *, via: str = "cli", by: str | None = None) -> Event:
    """Close a pending review without moving ``@champion``."""
    info = _require_pending(name, version)
    before = _champion(name)
    return _close(info, "rejected", "rejected", comment, via, by, before, before)


def expire(name: str, version: str, *, via: str = "prefect") -> Event | None:
    """Close a review nobody answered in time (the champion stays); None when it is no longer pending."""
    try:
        info = _require_pending(name, version)
    except ReviewError:
        return None
    before = _champion(name)
    return _close(info, "expired", "expired", "no decision before the review timed out", via, "timeout", before, before)


def _close(
    info: registry.VersionInfo,
    kind: str,
    outcome: str,
    comment: str,
    via: str,
    by: str | None,
    before: str | None,
    after: str | None,
) -> Event:
    tags = {STATUS_TAG: kind, DECISION_TAG: outcome, "glcf.review.comment": comment}
    event = _event(info.name, info.version, kind, before, after, via=via, comment=comment, by=by or history.reviewer())
    registry.tag_version(info.name, info.version, {**tags, "glcf.review.by": event.by, "glcf.review.at": event.at})
    history.append(event)
    logger.info("%s v%s: %s by %s (champion %s -> %s)", info.name, info.version, kind, event.by, before, after)
    return event


def previous_champion(events: list[Event]) -> str | None:
    """The champion before the current one, replaying the history: a promotion pushes the champion
    it replaced, a rollback pops it (so two rollbacks go back two promotions, not back and forth)."""
    stack: list[str | None] = []
    for e in events:
        moved = e.champion_after != e.champion_before and e.champion_after is not None
        if e.event == "rollback":
            if stack:
                stack.pop()
        elif moved:
            stack.append(e.champion_before)
    return stack[-1] if stack else None


def rollback(name: str, comment: str, *, via: str = "cli") -> Event:
    """Move ``@champion`` back to the champion it replaced, and record it."""
    current = _champion(name)
    if current is None:
        msg = f"{name}: has no @champion to roll back"
        raise ReviewError(msg)
    target = previous_champion(history.read(name))
    if target is None or target == current:
        msg = f"{name}: no earlier champion in the history to roll back to (champion is v{current})"
        raise ReviewError(msg)
    version_info(name, target)  # still registered
    registry.set_alias(name, registry.CHAMPION, target)
    registry.tag_version(name, current, {STATUS_TAG: "rolled-back"})
    event = _event(name, target, "rollback", current, target, via=via, comment=comment)
    history.append(event)
    logger.info("%s: @champion rolled back from v%s to v%s by %s", name, current, target, event.by)
    return event
