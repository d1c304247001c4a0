"""MLflow model registry: one registered model per category, aliases ``challenger`` / ``champion``.

Aliases, not stages (stages are deprecated since MLflow 2.9). Each version carries its evaluation
metrics and the hash of the test split they were measured on as tags, so that a promotion review
can compare a challenger with the champion on the same frozen split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version with what the promotion review needs."""

    name: str
    version: str
    run_id: str | None
    source: str
    metrics: dict[str, float]
    split_hash: str | None
    tags: dict[str, str]


def _info(name: str, mv: object) -> VersionInfo:
    tags = dict(getattr(mv, "tags", {}) or {})
    metrics = {k[len(METRIC_TAG_PREFIX) :]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)}
    return VersionInfo(
        name=name,
        version=str(mv.version),  # type: ignore[attr-defined]
        run_id=mv.run_id,  # type: ignore[attr-defined]
        source=mv.source,  # type: ignore[attr-defined]
        metrics=metrics,
        split_hash=tags.get(SPLIT_TAG),
        tags=tags,
    )


def describe(name: str, description: str) -> None:
    """Set the registered model's description when it has none yet."""
    client = MlflowClient()
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=description)


def metric_tags(metrics: Mapping[str, float], split_hash: str) -> dict[str, str]:
    tags = {f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in metrics.items()}
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
