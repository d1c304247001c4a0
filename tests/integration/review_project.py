"""Challengers for the review tests on a clone of the shared tiny project, without training again.

:func:`copy_challenger` registers the champion's logged model once more as a new version (a registry
operation): a challenger with the same metrics, which a gate of ``min_improvement: 0`` passes.
``registration.json`` then names it, as the register stage would have written it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pipeline_project import CATEGORY, TinyProject

MODEL = f"glcf-{CATEGORY}"
#: Version tags of the register stage (the promote stage reads the split, threshold and run; the metrics
#: come from the run itself, which the copy shares).
_CARRIED = ("metric.", "glcf.category", "glcf.test_split_hash", "glcf.threshold", "glcf.train_id", "glcf.run_id")


def registration_file(project: TinyProject) -> Path:
    return project.root / "reports" / CATEGORY / "registration.json"


@contextmanager
def tracking(project: TinyProject) -> Iterator[None]:
    """MLflow calls of this process without an explicit store go to the project's (restored after)."""
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)


def copy_challenger(project: TinyProject, of: str = "1") -> str:
    """Register version ``of``'s model again as ``@challenger``; returns the new version."""
    client = project.client()
    old = client.get_model_version(MODEL, of)
    tags = {k: v for k, v in old.tags.items() if k.startswith(_CARRIED)}
    with tracking(project):  # the SQL registry resolves a models:/ source with the default store
        new = client.create_model_version(MODEL, source=old.source, run_id=old.run_id, tags=tags)
    client.set_registered_model_alias(MODEL, "challenger", str(new.version))
    record: dict[str, Any] = json.loads(registration_file(project).read_text())
    record |= {"version": str(new.version), "model_uri": f"models:/{MODEL}/{new.version}"}
    registration_file(project).write_text(json.dumps(record, indent=2))
    return str(new.version)


def manual_params(project: TinyProject, **extra: Any) -> None:
    """Manual approval, and a gate that a challenger as good as the champion passes."""
    project.set_params({"register.approval": "manual", "register.min_improvement": 0.0, **extra})


def release_log_handler() -> None:
    """After an in-process ``glcf`` command (typer's CliRunner): drop the log handler that the
    command set up on the runner's stderr, closed by now."""
    import logging

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_glcf", False)]:
        root.removeHandler(handler)
