"""MLflow tracking server of the local stack: basic auth (401 without credentials), allowed hosts, proxied S3 artifacts.

The server runs with ``--app-name basic-auth`` on PostgreSQL with ``--artifacts-destination s3://glcf/mlflow``
(infra/local/stack.py); the client has only the tracking URI and the MLflow user, no S3 credentials.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from servers import LocalStack

from pipelines.settings import Settings
from pipelines.storage import ObjectStore

pytestmark = pytest.mark.integration

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


def _get(url: str, auth: tuple[str, str] | None = None, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_unauthenticated_requests_are_rejected(local_stack: LocalStack) -> None:
    status, _ = _get(local_stack.mlflow_uri + SEARCH)
    assert status == 401
    user = local_stack.env["MLFLOW_TRACKING_USERNAME"]
    assert _get(local_stack.mlflow_uri + SEARCH, auth=(user, "wrong-password-123"))[0] == 401
    assert _get(local_stack.mlflow_uri + SEARCH, auth=("nobody", local_stack.env["MLFLOW_TRACKING_PASSWORD"]))[0] == 401
    assert _get(local_stack.mlflow_uri + "/health")[0] == 200  # only the health probe is open


def test_configured_user_is_accepted(local_stack: LocalStack) -> None:
    auth = (local_stack.env["MLFLOW_TRACKING_USERNAME"], local_stack.env["MLFLOW_TRACKING_PASSWORD"])
    status, body = _get(local_stack.mlflow_uri + SEARCH, auth=auth)
    assert status == 200
    assert "experiments" in json.loads(body)


def test_foreign_host_header_is_rejected(local_stack: LocalStack) -> None:
    auth = (local_stack.env["MLFLOW_TRACKING_USERNAME"], local_stack.env["MLFLOW_TRACKING_PASSWORD"])
    status, _ = _get(local_stack.mlflow_uri + SEARCH, auth=auth, host="attacker.example:80")
    assert status in {400, 403}
    assert _get(local_stack.mlflow_uri + SEARCH, auth=auth, host=f"localhost:{local_stack.ports['mlflow']}")[0] == 200


def test_client_without_credentials_fails(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException, match=r"401|[Uu]nauthori[sz]ed|[Pp]ermission|credentials"):
        MlflowClient(tracking_uri=local_stack.mlflow_uri).search_experiments()


def test_authenticated_run_with_metric_and_proxied_s3_artifact(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    # The client needs no S3 access: artifacts go through the tracking server's proxy.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "GLCF_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = MlflowClient(tracking_uri=local_stack.mlflow_uri)
    experiment_id = client.create_experiment(f"auth-check-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id, tags={"category": "breakfast_box"})
    client.log_param(run.info.run_id, "model.bottleneck.depth", "6")
    client.log_metric(run.info.run_id, "image_auroc", 0.875, step=1)
    report = tmp_path / "report.json"
    report.write_text('{"image_auroc": 0.875}')
    client.log_artifact(run.info.run_id, str(report), artifact_path="reports")
    client.set_terminated(run.info.run_id)

    fetched = client.get_run(run.info.run_id)
    assert fetched.data.metrics["image_auroc"] == pytest.approx(0.875)
    assert fetched.info.artifact_uri.startswith("mlflow-artifacts:/")
    back = Path(client.download_artifacts(run.info.run_id, "reports/report.json", str(tmp_path / "dl")))
    assert back.read_text() == '{"image_auroc": 0.875}'

    # The bytes really are in the S3 bucket behind the proxy.
    store = ObjectStore.from_settings(
        Settings(
            aws_access_key_id=stack_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=stack_env["AWS_SECRET_ACCESS_KEY"],
            glcf_s3_endpoint_url=stack_env["GLCF_S3_ENDPOINT_URL"],
            glcf_s3_bucket=stack_env["GLCF_S3_BUCKET"],
        )
    )
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"mlflow/{experiment_id}/{run.info.run_id}/")
    keys = sorted(obj["Key"] for obj in listed.get("Contents", []))
    assert keys == [f"mlflow/{experiment_id}/{run.info.run_id}/artifacts/reports/report.json"]

    # No credential reached the run's params or tags.
    recorded = json.dumps({**fetched.data.params, **fetched.data.tags})
    for name in ("MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert stack_env[name] not in recorded
