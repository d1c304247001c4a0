"""Registered versions on a real MLflow store (SQLite in a temporary folder): a version's metrics come
from its source run, its tags are what a reviewer filters on."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pipelines import registry
from pipelines.params import load_params
from pipelines.promotion import decide

ROOT = Path(__file__).resolve().parents[2]
SPLIT = "split-a"
EVALUATION = {  # what the evaluate stage logs: the summary of metrics.json, no prefix
    "image_auroc_total": 0.93,
    "image_auroc_logical_anomalies": 0.91,
    "image_auroc_structural_anomalies": 0.95,
    "pixel_auroc": 0.88,
    "spro_0.05_mean": 0.41,
    "false_alarm_rate_good": 0.03,
}
_names = itertools.count()


def category_run(evaluation: dict[str, float], split: str = SPLIT) -> str:
    """A run as the stages leave it: training series, calibration figures and the evaluation summary."""
    from mlflow import MlflowClient

    from pipelines.tracking import CALIBRATION_METRICS, TRAIN_METRICS

    client = MlflowClient()
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    run_id = run.info.run_id
    for epoch, loss in enumerate((0.9, 0.5, 0.2)):
        client.log_metric(run_id, f"{TRAIN_METRICS}loss", loss, step=epoch)
    client.log_metric(run_id, f"{TRAIN_METRICS}final.epochs", 3.0)
    client.log_metric(run_id, f"{CALIBRATION_METRICS}threshold", 1.7)
    for name, value in evaluation.items():
        client.log_metric(run_id, name, value)
    client.set_tag(run_id, registry.SPLIT_TAG, split)
    client.set_terminated(run_id)
    return run_id


def register(run_id: str | None, tmp_path: Path, name: str | None = None, split: str = SPLIT) -> tuple[str, str]:
    """A version of ``name`` (a new model when ``None``) with the register stage's evaluation tags."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if name is None:
        name = f"glcf-registry-{next(_names)}"
        client.create_registered_model(name)
    version = str(client.create_model_version(name, source=str(tmp_path / "model"), run_id=run_id).version)
    gated = load_params(ROOT / "params.yaml").register.gated_metrics
    registry.tag_version(name, version, registry.metric_tags(EVALUATION, split, gated))
    return name, version


def test_a_version_reads_its_metrics_from_its_run_and_is_tagged_only_with_the_gated_ones(
    store: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    run_id = category_run(EVALUATION)
    name, version = register(run_id, tmp_path)
    info = registry.get_version(name, version)
    assert info.run_id == run_id
    assert info.metrics == pytest.approx(EVALUATION)  # neither train.* nor calibration.*
    assert info.split_hash == SPLIT
    tags = MlflowClient().get_model_version(name, version).tags
    assert tags == {
        "glcf.test_split_hash": SPLIT,
        "metric.image_auroc_total": "0.93",
        "metric.image_auroc_logical_anomalies": "0.91",
        "metric.image_auroc_structural_anomalies": "0.95",
        "metric.pixel_auroc": "0.88",
    }
    # a reviewer finds the versions above a figure without opening the runs
    found = MlflowClient().search_model_versions(f"name = '{name}' and tags.`metric.pixel_auroc` = '0.88'")
    assert [str(v.version) for v in found] == [version]


def test_the_gate_compares_the_runs_metrics(store: str, tmp_path: Path) -> None:
    gate = load_params(ROOT / "params.yaml").register
    name, first = register(category_run(EVALUATION), tmp_path)
    registry.set_alias(name, registry.CHAMPION, first)
    better = {**EVALUATION, "image_auroc_total": 0.96}
    _, second = register(category_run(better), tmp_path, name)
    champion = registry.by_alias(name, registry.CHAMPION)
    challenger = registry.get_version(name, second)
    assert champion is not None
    assert champion.version == first
    decision = decide(challenger.metrics, champion.metrics, gate)
    assert decision.promote, decision.reason
    improve = next(c for c in decision.checks if c.rule == "improve")
    assert (improve.challenger, improve.champion) == pytest.approx((0.96, 0.93))
    assert set(decision.challenger_metrics) == set(EVALUATION)


def test_metrics_follow_the_split_they_were_measured_on(store: str, tmp_path: Path) -> None:
    """A run evaluated again on another split after registration: its metrics belong to that split."""
    name, version = register(category_run(EVALUATION, split="split-b"), tmp_path, split=SPLIT)
    info = registry.get_version(name, version)
    assert info.split_hash == "split-b"  # so the review re-evaluates it on the challenger's split
    assert info.tags[registry.SPLIT_TAG] == SPLIT


def test_a_version_without_a_run_has_no_metrics(store: str, tmp_path: Path) -> None:
    name, version = register(None, tmp_path)
    info = registry.get_version(name, version)
    assert (info.run_id, info.metrics, info.split_hash) == (None, {}, SPLIT)
    assert registry.by_alias(name, registry.CHAMPION) is None
