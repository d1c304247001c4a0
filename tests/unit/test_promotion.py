"""The promotion gate decides from metrics alone; every rule can pass and fail."""

from __future__ import annotations

import math

import pytest

from pipelines.params import RegisterParams
from pipelines.promotion import decide, review_markdown

GATE = RegisterParams(
    primary_metric="image_auroc_mean",
    min_improvement=0.01,
    guarded_metrics={"pixel_auroc": 0.02, "spro_mean": 0.05},
    floors={"image_auroc_logical": 0.8, "image_auroc_structural": 0.8},
)
GOOD = {
    "image_auroc_mean": 0.90,
    "image_auroc_logical": 0.88,
    "image_auroc_structural": 0.92,
    "pixel_auroc": 0.95,
    "spro_mean": 0.60,
}


def test_first_version_promoted_when_floors_cleared() -> None:
    d = decide(GOOD, None, GATE)
    assert d.promote
    assert d.reason.startswith("promoted: first version")
    assert [c.rule for c in d.checks] == ["floor", "floor"]
    assert d.champion_metrics is None


def test_first_version_rejected_below_a_floor() -> None:
    d = decide({**GOOD, "image_auroc_logical": 0.79}, None, GATE)
    assert not d.promote
    assert "floor image_auroc_logical" in d.reason
    assert "0.7900 < floor 0.8000" in d.reason


def test_missing_or_nan_floor_metric_rejects() -> None:
    missing = {k: v for k, v in GOOD.items() if k != "image_auroc_structural"}
    assert not decide(missing, None, GATE).promote
    d = decide({**GOOD, "image_auroc_structural": math.nan}, None, GATE)
    assert not d.promote
    assert "missing or not finite" in d.reason


def test_challenger_must_improve_by_the_margin() -> None:
    champion = dict(GOOD)
    just_enough = {**GOOD, "image_auroc_mean": 0.91}
    too_little = {**GOOD, "image_auroc_mean": 0.905}
    assert decide(just_enough, champion, GATE).promote
    d = decide(too_little, champion, GATE)
    assert not d.promote
    assert "improve image_auroc_mean" in d.reason
    assert "+0.0050 < margin 0.0100" in d.reason


@pytest.mark.parametrize(
    ("metric", "value", "promote"),
    [
        ("pixel_auroc", 0.931, True),
        ("pixel_auroc", 0.929, False),
        ("spro_mean", 0.551, True),
        ("spro_mean", 0.549, False),
    ],
)
def test_guarded_metric_tolerance(metric: str, value: float, promote: bool) -> None:
    challenger = {**GOOD, "image_auroc_mean": 0.95, metric: value}
    d = decide(challenger, GOOD, GATE)
    assert d.promote is promote
    guard = next(c for c in d.checks if c.rule == "guard" and c.metric == metric)
    assert guard.passed is promote


def test_guarded_metric_missing_on_champion_rejects() -> None:
    champion = {k: v for k, v in GOOD.items() if k != "spro_mean"}
    d = decide({**GOOD, "image_auroc_mean": 0.99}, champion, GATE)
    assert not d.promote
    assert "missing for the champion" in d.reason


def test_floors_apply_to_every_challenger() -> None:
    challenger = {**GOOD, "image_auroc_mean": 0.99, "image_auroc_logical": 0.5}
    assert not decide(challenger, GOOD, GATE).promote


def test_review_markdown_lists_decision_and_both_metric_sets() -> None:
    challenger = {**GOOD, "image_auroc_mean": 0.95}
    d = decide(challenger, GOOD, GATE)
    md = review_markdown(d, model_name="glcf-x", challenger_version="2", champion_version="1", split_hash="abc")
    assert "**Decision: PROMOTED**" in md
    assert "| image_auroc_mean | 0.9500 | 0.9000 | +0.0500 |" in md
    assert "version 1" in md
    assert "`abc`" in md


def test_guarded_metric_absent_on_both_does_not_apply() -> None:
    gate = RegisterParams(primary_metric="image_auroc_total", min_improvement=0.0, guarded_metrics={"spro_mean": 0.01})
    d = decide({"image_auroc_total": 0.9}, {"image_auroc_total": 0.8}, gate)
    assert d.promote
    assert next(c for c in d.checks if c.rule == "guard").detail == "not measured on this data"
