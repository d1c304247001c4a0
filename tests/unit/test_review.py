"""Promotion reviews on a real MLflow registry (a SQLite store in a temporary folder).

The registered versions have no model files behind them: approval, rejection, expiry, rollback and
the history act on the registry alone. Also the pure selection of the review's gallery.
"""

from __future__ import annotations

import getpass
import itertools
from pathlib import Path

import numpy as np
import pytest

from pipelines.params import RegisterParams, parse_params
from pipelines.review import decisions, history
from pipelines.review.compare import Scored, changes_markdown, disagreements, errors

_names = itertools.count()


def model(store: str, versions: int, tmp_path: Path) -> str:
    """A registered model with ``versions`` versions; version 1 is the champion (an automatic gate)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    name = f"glcf-review-{next(_names)}"
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, source=str(tmp_path / "model"), run_id=None)
    decisions.apply_gate(name, "1", passed=True, reason="promoted: first version", approval="auto", champion=None)
    return name


def gate(name: str, version: str, champion: str | None, *, passed: bool = True, approval: str = "manual") -> str:
    """What the promote stage does for a version: its gate tags, then the outcome."""
    from pipelines import registry

    registry.tag_version(name, version, {decisions.GATE_CHAMPION_TAG: champion or "none"})
    reason = "promoted: improved" if passed else "rejected: improve image_auroc_total"
    return decisions.apply_gate(name, version, passed=passed, reason=reason, approval=approval, champion=champion)


def champion(name: str) -> str | None:
    from pipelines import registry

    info = registry.by_alias(name, registry.CHAMPION)
    return info.version if info else None


def test_manual_mode_keeps_the_champion_until_approval(store: str, tmp_path: Path) -> None:
    name = model(store, 2, tmp_path)
    assert gate(name, "2", "1") == "pending"
    assert champion(name) == "1"
    pending = [p for p in decisions.pending_reviews("glcf") if p.model == name]
    assert [(p.version, p.champion_version) for p in pending] == [("2", "1")]

    event = decisions.approve(name, "2", "better on the new lids")
    assert champion(name) == "2"
    assert (event.event, event.by, event.comment) == ("approved", getpass.getuser(), "better on the new lids")
    assert (event.champion_before, event.champion_after) == ("1", "2")
    assert not [p for p in decisions.pending_reviews() if p.model == name]
    with pytest.raises(decisions.ReviewError, match=rf"^{name} v2: not pending review \(status: approved\)$"):
        decisions.approve(name, "2", "again")


def test_auto_mode_moves_the_champion_on_the_gate_alone(store: str, tmp_path: Path) -> None:
    name = model(store, 3, tmp_path)
    assert gate(name, "2", "1", approval="auto") == "promoted"
    assert champion(name) == "2"
    assert gate(name, "3", "2", passed=False, approval="auto") == "rejected"
    assert champion(name) == "2"


def test_reject_and_expiry_leave_the_champion(store: str, tmp_path: Path) -> None:
    name = model(store, 3, tmp_path)
    gate(name, "2", "1")
    gate(name, "3", "1")
    rejected = decisions.reject(name, "2", "false alarms on good boxes")
    expired = decisions.expire(name, "3")
    assert champion(name) == "1"
    assert (rejected.event, rejected.champion_after) == ("rejected", "1")
    assert expired is not None
    assert (expired.event, expired.by, expired.champion_after) == ("expired", "timeout", "1")
    assert decisions.expire(name, "3") is None  # already closed: nothing recorded twice
    with pytest.raises(decisions.ReviewError, match=r"v3: not pending review \(status: expired\)"):
        decisions.approve(name, "3", "too late")


def test_gate_failure_is_not_pending_and_unknown_versions_are_named(store: str, tmp_path: Path) -> None:
    name = model(store, 2, tmp_path)
    assert gate(name, "2", "1", passed=False) == "rejected"
    with pytest.raises(decisions.ReviewError, match=r"v2: not pending review \(status: gate-failed\)"):
        decisions.approve(name, "2", "")
    with pytest.raises(decisions.ReviewError, match=rf"^{name} v9: no such registered model version$"):
        decisions.reject(name, "9", "")


def test_approval_refused_when_the_champion_changed_since_the_gate(store: str, tmp_path: Path) -> None:
    name = model(store, 3, tmp_path)
    gate(name, "2", "1")
    gate(name, "3", "1")
    decisions.approve(name, "3", "ok")
    with pytest.raises(decisions.ReviewError, match=r"compared it with champion 1, but the champion is now 3"):
        decisions.approve(name, "2", "ok")
    assert champion(name) == "3"


def test_rollback_restores_the_previous_champions_in_turn(store: str, tmp_path: Path) -> None:
    name = model(store, 3, tmp_path)
    with pytest.raises(decisions.ReviewError, match=rf"^{name}: no earlier champion in the history"):
        decisions.rollback(name, "nothing to undo")
    gate(name, "2", "1")
    decisions.approve(name, "2", "ok")
    gate(name, "3", "2", approval="auto")
    assert champion(name) == "3"
    first = decisions.rollback(name, "v3 misses scratches on the line")
    assert champion(name) == "2"
    assert (first.event, first.version, first.champion_before, first.champion_after) == ("rollback", "2", "3", "2")
    decisions.rollback(name, "v2 too")
    assert champion(name) == "1"
    with pytest.raises(decisions.ReviewError, match="no earlier champion"):
        decisions.rollback(name, "")
    assert champion(name) == "1"


def test_history_lists_every_decision_in_order(store: str, tmp_path: Path) -> None:
    name = model(store, 4, tmp_path)
    gate(name, "2", "1")
    decisions.reject(name, "2", "no")
    gate(name, "3", "1")
    decisions.approve(name, "3", "yes")
    gate(name, "4", "3", passed=False)
    decisions.rollback(name, "back")
    events = history.read(name)
    assert [(e.event, e.version, e.gate) for e in events] == [
        ("gate", "1", "passed"),
        ("pending", "2", "passed"),
        ("rejected", "2", None),
        ("pending", "3", "passed"),
        ("approved", "3", None),
        ("gate", "4", "failed"),
        ("rollback", "1", None),
    ]
    assert [(e.champion_before, e.champion_after) for e in events] == [
        (None, "1"),
        ("1", "1"),
        ("1", "1"),
        ("1", "1"),
        ("1", "3"),
        ("3", "3"),
        ("3", "1"),
    ]
    assert [e.comment for e in events if e.via == "cli"] == ["no", "yes", "back"]
    assert events[0].by == "gate"
    assert events == sorted(events, key=lambda e: e.at)
    # the version tags of version 3 say who decided; the history keeps what later tags overwrite
    assert decisions.version_info(name, "3").tags["glcf.review.by"] == getpass.getuser()


def test_long_comments_fit_the_registry(store: str, tmp_path: Path) -> None:
    name = model(store, 2, tmp_path)
    gate(name, "2", "1")
    decisions.reject(name, "2", "x" * 20000)
    last = history.read(name)[-1]
    assert last.event == "rejected"
    assert 1000 < len(last.comment) <= 1500


def test_reviewer_is_the_tracking_user_on_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "quality-lead")
    assert history.reviewer() == "quality-lead"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # a local store has no server user
    assert history.reviewer() == getpass.getuser()


def test_gallery_picks_disagreements_by_margin_difference() -> None:
    labels = [0, 0, 1, 1, 1]
    ch = Scored("2", 1.0, np.array([0.5, 1.5, 3.0, 0.9, 2.0]))
    cp = Scored("1", 10.0, np.array([5.0, 5.0, 8.0, 30.0, 20.0]))
    picks = disagreements(ch, cp, 5)
    # decisions: challenger F T T F T, champion F F F T T -> disagree on 1, 2, 3
    assert sorted(p.index for p in picks) == [1, 2, 3]
    assert all(p.why == "disagree" for p in picks)
    diffs = [abs(p.difference) for p in picks]
    assert diffs == sorted(diffs, reverse=True)
    assert len(disagreements(ch, cp, 2)) == 2
    alone = errors(ch, labels, 5)
    assert {(p.index, p.why) for p in alone} == {(1, "false alarm"), (3, "miss")}


def test_changes_markdown_has_thresholds_false_alarms_and_defects() -> None:
    labels = [0, 0, 1]
    ch = Scored("2", 1.0, np.array([0.5, 1.5, 3.0]))
    cp = Scored("1", 2.0, np.array([0.5, 1.5, 3.0]))
    text = changes_markdown(
        ch,
        cp,
        {"false_alarm_rate_good": 0.5, "image_auroc_defect_missing_lid": 0.9},
        {"false_alarm_rate_good": 0.0, "image_auroc_defect_missing_lid": 0.8},
        labels,
    )
    assert "| challenger v2 | 1.0000 | 0.5000 | 1 of 2 |" in text
    assert "| champion v1 | 2.0000 | 0.0000 | 0 of 2 |" in text
    unscored = changes_markdown(Scored("2", 1.0, np.array([])), None, {"false_alarm_rate_good": 0.25}, None, None)
    assert "| challenger v2 | 1.0000 | 0.2500 | – |" in unscored
    assert "| champion" not in unscored  # no champion: no row
    assert "| missing_lid | 0.9000 | 0.8000 | +0.1000 |" in text


def test_approval_setting_is_validated() -> None:
    base = {"data": {"categories": ["a"]}}
    assert parse_params({**base, "register": {"approval": "manual"}}).register.approval == "manual"
    assert RegisterParams().approval == "auto"
    with pytest.raises(ValueError, match=r"^register.approval: must be one of auto, manual; got 'sometimes'$"):
        parse_params({**base, "register": {"approval": "sometimes"}})
    with pytest.raises(ValueError, match=r"^register.review_timeout_s: must be an integer >= 1, got 0$"):
        parse_params({**base, "register": {"review_timeout_s": 0}})
    with pytest.raises(ValueError, match=r"^register.reviewers: unknown key"):
        parse_params({**base, "register": {"reviewers": ["x"]}})
