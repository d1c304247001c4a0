"""MLflow model registry: one registered model per category, aliases ``challenger`` / ``champion``.

Aliases, not stages (stages are deprecated since MLflow 2.9). A version's metrics are those of its
source run (``run_id``), where MLflow shows them: the promotion review reads them from there
(:attr:`VersionInfo.metrics`). The version's tags hold what a reviewer filters versions on
(``search_model_versions("tags.`glcf.category` = 'pushpins'")``):

* ``glcf.category`` and ``glcf.variant``: which product and which model variant;
* ``glcf.test_split_hash``: the frozen test split the metrics were measured on; a review compares
  a challenger with the champion on one split only;
* ``metric.<name>`` for the metrics the promotion gate compares, and no other
  (:attr:`pipelines.params.RegisterParams.gated_metrics`: the primary metric, the guarded ones and
  those with a floor; four with the project's ``params.yaml``);
* the register stage's records: ``glcf.run_id``, ``glcf.train_id``, ``glcf.data_hash``,
  ``glcf.threshold`` and ``mlflow.source.git.commit``;
* the review's outcome (``glcf.promotion.*``, ``glcf.review.*``: :mod:`pipelines.review.decisions`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
METRIC_TAG_PREFIX = "metric."
SPLIT_TAG = "glcf.test_split_hash"
RUN_TAG = "glcf.run_id"  # the run the register stage logged the version in


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version with what the promotion review needs.

    Attributes:
        metrics: the evaluation metrics of the source run (empty without one).
        split_hash: the test split they were measured on (the run's tag, else the version's).
    """

    name: str
    version: str
    run_id: str | None
    source: str
    metrics: dict[str, float]
    split_hash: str | None
    tags: dict[str, str]

    @property
    def registering_run(self) -> str | None:
        """The run the register stage logged this version in (its tag), else the version's source run."""
        return self.tags.get(RUN_TAG) or self.run_id


def _run_metrics(name: str, version: str, run_id: str | None) -> tuple[dict[str, float], str | None]:
    """The evaluation metrics of a version's source run and the test split of that evaluation."""
    from pipelines.tracking import evaluation_metrics

    if not run_id:
        return {}, None
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        logger.warning("%s v%s: source run %s is not in the tracking store: no metrics", name, version, run_id)
        return {}, None
    return evaluation_metrics(run.data.metrics), run.data.tags.get(SPLIT_TAG)


def _info(name: str, mv: object) -> VersionInfo:
    tags = dict(getattr(mv, "tags", {}) or {})
    version = str(mv.version)  # type: ignore[attr-defined]
    metrics, measured_on = _run_metrics(name, version, mv.run_id)  # type: ignore[attr-defined]
    split_hash = tags.get(SPLIT_TAG)
    if measured_on and measured_on != split_hash:
        logger.warning("%s v%s: its run was last evaluated on split %s, not %s", name, version, measured_on, split_hash)
        split_hash = measured_on  # the split its metrics belong to
    return VersionInfo(
        name=name,
        version=version,
        run_id=mv.run_id,  # type: ignore[attr-defined]
        source=mv.source,  # type: ignore[attr-defined]
        metrics=metrics,
        split_hash=split_hash,
        tags=tags,
    )


def describe(name: str, description: str) -> None:
    """Set the registered model's description when it has none yet."""
    client = MlflowClient()
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=description)


def metric_tags(metrics: Mapping[str, float], split_hash: str, names: Iterable[str]) -> dict[str, str]:
    """The tags to filter versions by their evaluation: the split hash and the metrics ``names`` (those measured)."""
    tags = {f"{METRIC_TAG_PREFIX}{k}": repr(float(metrics[k])) for k in names if k in metrics}
    tags[SPLIT_TAG] = split_hash
    return tags


def by_alias(name: str, alias: str) -> VersionInfo | None:
    """The version behind an alias, or ``None`` when the alias (or the model) does not exist."""
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise
    return _info(name, mv)


def get_version(name: str, version: str) -> VersionInfo:
    return _info(name, MlflowClient().get_model_version(name, version))


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)
    logger.info("%s: alias @%s -> version %s", name, alias, version)


def tag_version(name: str, version: str, tags: Mapping[str, object]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        client.set_model_version_tag(name, version, key, text[:5000])


def download_detector(name: str, version: str, dst: Path) -> Any:
    """Download version ``version`` of ``name`` into ``dst``; its bundle as a :class:`glcf.inference.detector.Detector`.

    The bundle is the ``bundle`` artifact that the register stage logs with the pyfunc model.
    """
    import mlflow

    from glcf.inference.detector import BUNDLE_FILE, Detector

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dst)))
    return Detector(local / "artifacts" / BUNDLE_FILE)
