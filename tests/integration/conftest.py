"""Shared fixtures of the integration tests: S3 on loopback and the local team stack (infra/local).

Fixtures for other integration tests (pipeline flows against real servers):

* ``local_stack`` (session): PostgreSQL + moto S3 + MLflow (basic auth, proxied S3 artifacts) + Prefect server,
  started once per session by ``infra/local/stack.py up`` and stopped by ``down``. A :class:`servers.LocalStack`.
* ``stack_env`` (function): sets the stack's client variables (MLFLOW_TRACKING_URI/USERNAME/PASSWORD,
  PREFECT_API_URL, AWS_*, MLFLOW_S3_ENDPOINT_URL, GLCF_S3_*) for one test; returns them.
* ``moto_endpoint`` (session): URL of a lone in-memory ``moto_server`` (2 s, for S3-only tests).
* ``s3_settings`` (function): :class:`pipelines.settings.Settings` for ``moto_endpoint`` with a fresh bucket.
* ``object_store`` (function): :class:`pipelines.storage.ObjectStore` on that bucket (created).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servers import LocalStack, make_state_dir, moto_server, start_local_stack, stop_local_stack

from pipelines.settings import Settings
from pipelines.storage import ObjectStore, make_client

# Credential values the tests look for in logs and messages (moto accepts any key pair).
TEST_ACCESS_KEY_ID = "AKIAGLCFTESTKEYID42"
TEST_SECRET_ACCESS_KEY = "glcf-test-secret-8d1f0c6e7b2a"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_settings(moto_endpoint: str) -> Settings:
    return Settings(
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        glcf_s3_endpoint_url=moto_endpoint,
        glcf_s3_bucket=f"glcf-test-{uuid.uuid4().hex[:12]}",
        glcf_s3_max_attempts=2,
        glcf_s3_connect_timeout=2,
        glcf_s3_read_timeout=10,
    )


@pytest.fixture
def object_store(s3_settings: Settings) -> ObjectStore:
    store = ObjectStore.from_settings(s3_settings, client=make_client(s3_settings))
    store.ensure_bucket()
    return store


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = start_local_stack(make_state_dir())
    try:
        yield stack
    finally:
        stop_local_stack(stack)


@pytest.fixture
def stack_env(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in local_stack.env.items():
        monkeypatch.setenv(name, value)
    return dict(local_stack.env)
