"""pipelines/storage.py against a real S3 server (moto_server on 127.0.0.1): bucket creation and its failures."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from conftest import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from servers import free_port

from pipelines.settings import Settings
from pipelines.storage import ObjectStore, StorageError, make_client

pytestmark = pytest.mark.integration


def test_ensure_bucket_creates_once(s3_settings: Settings) -> None:
    store = ObjectStore.from_settings(s3_settings)
    assert store.ensure_bucket() is True
    assert store.ensure_bucket() is False
    names = [b["Name"] for b in store.client.list_buckets()["Buckets"]]
    assert s3_settings.glcf_s3_bucket in names


def test_ensure_bucket_outside_us_east_1_sets_the_location(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"aws_default_region": "eu-west-1"})
    store = ObjectStore(make_client(settings), s3_settings.glcf_s3_bucket or "")
    assert store.ensure_bucket() is True
    assert store.client.get_bucket_location(Bucket=store.bucket)["LocationConstraint"] == "eu-west-1"
    assert store.ensure_bucket() is False


def test_a_bucket_name_is_required(s3_settings: Settings) -> None:
    with pytest.raises(ValueError, match="GLCF_S3_BUCKET is not set"):
        ObjectStore.from_settings(s3_settings.model_copy(update={"glcf_s3_bucket": None}))
    with pytest.raises(ValueError, match="needs a bucket name"):
        ObjectStore(make_client(s3_settings), "")


def _count_attempts(store: ObjectStore) -> list[str]:
    attempts: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: attempts.append(kw["request"].url))
    return attempts


def test_unreachable_endpoint_fails_after_retries_in_bounded_time() -> None:
    port = free_port()  # nothing listens there
    settings = Settings(
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        glcf_s3_endpoint_url=f"http://127.0.0.1:{port}",
        glcf_s3_bucket="glcf",
        glcf_s3_max_attempts=3,
        glcf_s3_connect_timeout=0.5,
    )
    store = ObjectStore.from_settings(settings)
    attempts = _count_attempts(store)
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.ensure_bucket()
    elapsed = time.monotonic() - start
    assert len(attempts) == 3
    assert elapsed < 15
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert "check bucket 'glcf'" in message
    assert TEST_SECRET_ACCESS_KEY not in message
    assert TEST_ACCESS_KEY_ID not in message


def test_silent_server_hits_read_timeout_after_retries() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts TCP connections in the backlog, never answers
        port = silent.getsockname()[1]
        settings = Settings(
            aws_access_key_id=TEST_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
            glcf_s3_endpoint_url=f"http://127.0.0.1:{port}",
            glcf_s3_bucket="glcf",
            glcf_s3_max_attempts=2,
            glcf_s3_connect_timeout=0.5,
            glcf_s3_read_timeout=0.5,
        )
        store = ObjectStore.from_settings(settings)
        attempts = _count_attempts(store)
        start = time.monotonic()
        with pytest.raises(StorageError, match="timeout") as info:
            store.ensure_bucket()
        elapsed = time.monotonic() - start
    assert len(attempts) == 2
    assert 0.9 < elapsed < 15
    assert f"127.0.0.1:{port}" in str(info.value)


def test_no_credential_in_storage_logs_or_errors(s3_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pipelines")
    store = ObjectStore.from_settings(s3_settings)
    store.ensure_bucket()
    bad = ObjectStore(store.client, "Not_A_Valid_Bucket_Name!", secrets=[TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY])
    with pytest.raises(StorageError) as info:
        bad.ensure_bucket()
    text = "\n".join([str(info.value), *(r.getMessage() for r in caplog.records), repr(store.client.meta.config)])
    assert "created bucket" in text  # the storage logs were captured
    assert "Not_A_Valid_Bucket_Name!" in str(info.value)
    assert TEST_SECRET_ACCESS_KEY not in text
    assert TEST_ACCESS_KEY_ID not in text


def test_scrub_removes_secrets_from_server_messages(object_store: ObjectStore) -> None:
    err = object_store._fail("check", f"server said: key {TEST_ACCESS_KEY_ID} secret {TEST_SECRET_ACCESS_KEY}")
    assert TEST_ACCESS_KEY_ID not in str(err)
    assert TEST_SECRET_ACCESS_KEY not in str(err)
    assert "key *** secret ***" in str(err)
