"""MLflow tracking adapter: one experiment per dataset, one run per (category, variant).

Each DVC stage is its own process, so the stages find their run again through the tag
``glcf.train_id`` that the train stage writes into ``models/<category>/mlflow_run.json``. When the
run is not in the current tracking store (a new ``MLFLOW_TRACKING_URI``, a deleted database), the
stage creates it again and back-fills what the earlier stages wrote to disk, so a run is complete
whichever store it lands in. Nothing here logs the tracking URI or any credential.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.io import read_json
from pipelines.params import CategoryPaths, PipelineParams

logger = logging.getLogger(__name__)

TRAIN_ID_TAG = "glcf.train_id"
DEFAULT_DB = "mlflow.db"
# A category run's metrics: the train stage's under TRAIN_METRICS (per epoch, and ``train.final.*``), the
# calibrate stage's under CALIBRATION_METRICS, the evaluate stage's summary under no prefix.
TRAIN_METRICS = "train."
CALIBRATION_METRICS = "calibration."

# The parent run of the runs created in this context (benchmarks, sweeps): see :func:`nested_under`.
_PARENT_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("glcf_parent_run", default=None)


def configure_tracking(project_root: Path) -> str:
    """The tracking store of the settings (``MLFLOW_TRACKING_URI``), else a SQLite store in the project folder.

    The local store's URI is also exported, so that the processes this one starts (a model server, a
    DVC stage) use the same store. Returns the URI.
    """
    from pipelines.settings import get_settings

    uri = get_settings().mlflow_tracking_uri
    if uri is None:
        uri = f"sqlite:///{(project_root / DEFAULT_DB).resolve()}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    return uri


def git_commit(root: Path) -> tuple[str, bool]:
    """The checked-out commit and whether the work tree differs from it (``unknown`` outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, dirty


def ensure_experiment(name: str) -> str:
    """The experiment's id, created if missing; safe when parallel categories race to create it."""
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)  # another worker created it first
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def read_run_info(paths: CategoryPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.run_info.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{paths.run_info}: missing; run the train stage of {paths.category!r} first"
        raise FileNotFoundError(msg) from None


def base_tags(params: PipelineParams, category: str, project_root: Path, data_hash: str | None) -> dict[str, str]:
    commit, dirty = git_commit(project_root)
    tags = {
        "glcf.category": category,
        "glcf.variant": params.register.variant,
        "glcf.dataset": params.data.dataset_name,
        "glcf.params_hash": params.fingerprint(),
        "mlflow.source.git.commit": commit,
        "glcf.git_dirty": str(dirty).lower(),
    }
    if data_hash:
        tags["glcf.data_hash"] = data_hash
    return tags


def find_run(experiment_id: str, train_id: str) -> str | None:
    runs = MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{TRAIN_ID_TAG}` = '{train_id}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def log_params_flat(flat: Mapping[str, Any]) -> None:
    """Log flattened params in chunks (MLflow caps one batch at 100 params)."""
    items = [(k, "null" if v is None else str(v)) for k, v in sorted(flat.items())]
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))


def log_history(history_csv: Path) -> None:
    """Back-fill per-epoch losses from the train stage's ``history.csv``."""
    import pandas as pd

    frame = pd.read_csv(history_csv)
    for _, row in frame.iterrows():
        epoch = int(row["epoch"])
        mlflow.log_metrics({f"{TRAIN_METRICS}{k}": float(v) for k, v in row.items() if k != "epoch"}, step=epoch)


def log_train_outputs(paths: CategoryPaths) -> None:
    """Log a finished training's per-epoch history and its summary (``train.final.*``, as the train stage does)."""
    if paths.history.exists():
        log_history(paths.history)
    if paths.train_metrics.exists():
        log_flat_metrics(read_json(paths.train_metrics), prefix=f"{TRAIN_METRICS}final.")


@contextlib.contextmanager
def nested_under(parent_run_id: str | None) -> Iterator[None]:
    """Create the category runs opened in this context as children of ``parent_run_id``.

    The stage functions open their run through :func:`category_run` without knowing who called
    them; a benchmark wraps them in this context so that every run it creates carries the tag
    ``mlflow.parentRunId`` (``None`` leaves runs top-level).
    """
    token = _PARENT_RUN.set(parent_run_id)
    try:
        yield
    finally:
        _PARENT_RUN.reset(token)


@contextlib.contextmanager
def category_run(
    params: PipelineParams,
    paths: CategoryPaths,
    *,
    stage: str,
    data_hash: str | None = None,
    new_train_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or re-create) the MLflow run of one category and variant.

    Args:
        params: the pipeline parameters.
        paths: the category's paths.
        stage: name of the calling stage (logged as a tag of the last stage that touched the run).
        data_hash: the prepared manifest's hash, logged as a tag.
        new_train_id: the train stage passes its id (fresh, or the interrupted run's when resuming);
            other stages pass ``None`` and reuse the run recorded in ``mlflow_run.json``.
        parent_run_id: make a newly created run a child of this run (default: the run set by
            :func:`nested_under`, else none); an existing run keeps its parent.
    """
    project_root = paths.root
    configure_tracking(project_root)
    experiment_id = ensure_experiment(params.experiment_name)
    train_id = new_train_id or read_run_info(paths)["train_id"]
    run_id = find_run(experiment_id, train_id)  # a resumed training continues its run
    backfill = run_id is None and new_train_id is None
    run_name = f"{paths.category}/{params.register.variant}"
    parent = (parent_run_id or _PARENT_RUN.get()) if run_id is None else None
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=run_name, parent_run_id=parent) as run:
        if run_id is None:
            mlflow.set_tags({**base_tags(params, paths.category, project_root, data_hash), TRAIN_ID_TAG: train_id})
            log_params_flat(params.flat())
            log_resolved_config(params)
        if backfill:
            logger.warning("MLflow run of train id %s not found in this store: re-creating it", train_id)
            mlflow.set_tag("glcf.backfilled", "true")
            log_train_outputs(paths)
        mlflow.set_tag("glcf.last_stage", stage)
        yield run


def log_resolved_config(params: PipelineParams) -> None:
    import yaml

    from glcf.config import config_to_dict

    mlflow.log_text(yaml.safe_dump(config_to_dict(params.glcf), sort_keys=False), "config/glcf_config.yaml")
    mlflow.log_text(yaml.safe_dump(params.raw, sort_keys=False), "config/params.yaml")


def log_flat_metrics(metrics: Mapping[str, Any], prefix: str = "", step: int | None = None) -> None:
    """Log every finite number of a nested mapping as ``prefix + dotted.key``."""
    flat: dict[str, float] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{name}.{key}" if name else str(key))
        elif isinstance(node, int | float) and math.isfinite(node):
            flat[name] = float(node)

    walk(metrics, "")
    safe = {f"{prefix}{k}".replace("@", "_at_"): v for k, v in flat.items()}
    items = sorted(safe.items())
    for i in range(0, len(items), 500):
        mlflow.log_metrics(dict(items[i : i + 500]), step=step)


def evaluation_metrics(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """The evaluation summary among a category run's metrics (the names of ``metrics.json``'s ``summary``)."""
    stages = (TRAIN_METRICS, CALIBRATION_METRICS)
    return {k: float(v) for k, v in run_metrics.items() if not k.startswith(stages)}


def log_dir(path: Path, artifact_path: str) -> None:
    if path.exists():
        mlflow.log_artifacts(str(path), artifact_path)
