"""Who decides a review on the team tracking server (the local stack's MLflow with basic auth).

The recorded reviewer is the user the server authenticated; a request without valid credentials,
or from a user who may only read the model, cannot approve, and leaves the version pending.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from review_project import release_log_handler
from servers import LocalStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNAUTHENTICATED = "the tracking server refused the credentials (HTTP 401): set MLFLOW_TRACKING_USERNAME/PASSWORD"
FORBIDDEN = "the tracking server's user may not change this model (HTTP 403)"


@contextmanager
def acting_as(user: str | None, password: str | None) -> Iterator[None]:
    """MLflow requests of this process carry these credentials (none when ``user`` is None)."""
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])  # restored after the reset below
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)


def approve_cli(name: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(
        app, ["review", "approve", name, "2", "--comment", "ship it", "--params", "params.yaml"]
    )
    release_log_handler()
    return result.exit_code, result.output


def test_only_an_authenticated_user_with_edit_rights_approves(
    local_stack: LocalStack, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    from pipelines import registry
    from pipelines.review import decisions, history

    monkeypatch.chdir(REPO)  # the repository's params.yaml
    admin = MlflowClient()
    name = f"review-auth-{uuid.uuid4().hex[:8]}"
    run = admin.create_run(admin.create_experiment(f"{name}-runs"))
    admin.create_registered_model(name)
    for _ in range(2):
        admin.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    decisions.apply_gate(name, "1", passed=True, reason="promoted: first version", approval="auto", champion=None)
    registry.tag_version(name, "2", {decisions.GATE_CHAMPION_TAG: "1"})
    assert decisions.apply_gate(name, "2", passed=True, reason="promoted", approval="manual", champion="1") == "pending"

    auth = AuthServiceClient(local_stack.mlflow_uri)
    lead, viewer = f"qa-lead-{uuid.uuid4().hex[:6]}", f"viewer-{uuid.uuid4().hex[:6]}"
    auth.create_user(lead, "lead-password-123")
    auth.create_user(viewer, "viewer-password-123")  # the server's default permission: READ
    auth.grant_user_permission(lead, "registered_model", name, "EDIT")

    for user, password, expected in (
        (None, None, UNAUTHENTICATED),
        (lead, "wrong-password-123", UNAUTHENTICATED),
        (viewer, "viewer-password-123", FORBIDDEN),
    ):
        with acting_as(user, password):
            code, out = approve_cli(name)
        assert (code, out.strip()) == (1, f"glcf review approve: {expected}")
    assert registry.by_alias(name, registry.CHAMPION).version == "1"
    assert admin.get_model_version(name, "2").tags[decisions.STATUS_TAG] == "pending"

    with acting_as(lead, "lead-password-123"):
        code, out = approve_cli(name)
    assert code == 0, out
    assert out.strip() == f"{name} v2: approved by {lead}; @champion 1 -> 2"
    assert registry.by_alias(name, registry.CHAMPION).version == "2"
    last = history.read(name)[-1]
    assert (last.event, last.by, last.recorded_by, last.comment) == ("approved", lead, lead, "ship it")
    assert admin.get_model_version(name, "2").tags["glcf.review.by"] == lead
