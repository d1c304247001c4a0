"""pipelines/storage.py against a real S3 server (moto_server on 127.0.0.1): round trips, integrity, failures."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from conftest import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from servers import free_port

from pipelines.settings import Settings
from pipelines.storage import (
    SHA256_METADATA_KEY,
    ChecksumMismatchError,
    MissingChecksumError,
    ObjectStore,
    StorageError,
    make_client,
)

pytestmark = pytest.mark.integration


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rand(n: int, seed: int = 0) -> bytes:
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_ensure_bucket_creates_once(s3_settings: Settings) -> None:
    store = ObjectStore.from_settings(s3_settings)
    assert store.ensure_bucket() is True
    assert store.ensure_bucket() is False
    names = [b["Name"] for b in store.client.list_buckets()["Buckets"]]
    assert s3_settings.glcf_s3_bucket in names


def test_key_layout(object_store: ObjectStore) -> None:
    assert object_store.key("datasets", "synth/v1", "train.zip") == "team/datasets/synth/v1/train.zip"
    with pytest.raises(ValueError, match="unknown storage kind 'weights'"):
        object_store.key("weights", "x")


def test_file_round_trip_with_checksum_metadata(object_store: ObjectStore, tmp_path: Path) -> None:
    data = _rand(300_000)
    src = _write(tmp_path / "model.onnx", data)
    key = object_store.key("models", "bottle", "model.onnx")
    up = object_store.upload_file(src, key)
    assert up.sha256 == hashlib.sha256(data).hexdigest()
    assert up.size == len(data)
    assert up.uri == f"s3://{object_store.bucket}/{key}"
    head = object_store.client.head_object(Bucket=object_store.bucket, Key=key)
    assert head["Metadata"][SHA256_METADATA_KEY] == hashlib.sha256(data).hexdigest()

    dst = tmp_path / "out" / "model.onnx"
    down = object_store.download_file(key, dst)
    assert dst.read_bytes() == data
    assert down.sha256 == up.sha256
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model.onnx"]  # no temporary left behind


def test_multipart_upload_etag_is_not_an_md5(s3_settings: Settings, tmp_path: Path) -> None:
    small_parts = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    store = ObjectStore(make_client(s3_settings), s3_settings.glcf_s3_bucket or "", transfer_config=small_parts)
    store.ensure_bucket()
    data = _rand(11 * 1024 * 1024, seed=1)
    src = _write(tmp_path / "big.bin", data)
    store.upload_file(src, "big.bin")
    etag = store.client.head_object(Bucket=store.bucket, Key="big.bin")["ETag"].strip('"')
    assert etag.endswith("-3")  # three parts: the ETag is md5-of-part-md5s, not the body's MD5
    assert etag.split("-")[0] != hashlib.md5(data).hexdigest()
    dst = tmp_path / "big.out"
    assert store.download_file("big.bin", dst).sha256 == hashlib.sha256(data).hexdigest()
    assert dst.read_bytes() == data


def test_directory_round_trip(object_store: ObjectStore, tmp_path: Path) -> None:
    files = {
        "train/good/000.png": _rand(1000, 1),
        "train/good/001.png": _rand(2000, 2),
        "test/logical_anomalies/000.png": _rand(1500, 3),
        "defects_config.json": b'{"pixel_value": 255}',
    }
    src = tmp_path / "dataset"
    for rel, data in files.items():
        _write(src / rel, data)
    prefix = object_store.key("datasets", "breakfast_box")
    uploaded = object_store.upload_dir(src, prefix)
    assert len(uploaded) == len(files)
    assert object_store.list_keys(prefix) == sorted(f"{prefix}/{rel}" for rel in files)

    dst = tmp_path / "restored"
    object_store.download_dir(prefix, dst)
    restored = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert restored == files


def test_corrupted_object_is_detected_and_good_local_file_kept(object_store: ObjectStore, tmp_path: Path) -> None:
    data = b"report v1 " * 1000
    key = object_store.key("reports", "metrics.json")
    up = object_store.upload_file(_write(tmp_path / "metrics.json", data), key)
    dst = tmp_path / "local" / "metrics.json"
    object_store.download_file(key, dst)

    # Corrupt the object behind the store's back: other bytes, the original checksum metadata.
    object_store.client.put_object(
        Bucket=object_store.bucket, Key=key, Body=b"tampered", Metadata={SHA256_METADATA_KEY: up.sha256}
    )
    with pytest.raises(ChecksumMismatchError) as info:
        object_store.download_file(key, dst)
    message = str(info.value)
    assert f"s3://{object_store.bucket}/{key}" in message
    assert object_store.endpoint in message
    assert "checksum mismatch" in message
    assert dst.read_bytes() == data  # the good file was not clobbered
    assert sorted(p.name for p in dst.parent.iterdir()) == ["metrics.json"]


def test_object_without_checksum(object_store: ObjectStore, tmp_path: Path) -> None:
    object_store.client.put_object(Bucket=object_store.bucket, Key="foreign.txt", Body=b"from elsewhere")
    with pytest.raises(MissingChecksumError, match="no glcf-sha256 metadata"):
        object_store.download_file("foreign.txt", tmp_path / "f.txt")
    assert not (tmp_path / "f.txt").exists()
    result = object_store.download_file("foreign.txt", tmp_path / "f.txt", require_checksum=False)
    assert (tmp_path / "f.txt").read_bytes() == b"from elsewhere"
    assert result.sha256 == hashlib.sha256(b"from elsewhere").hexdigest()


def test_missing_object_and_empty_prefix(object_store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="object not found") as info:
        object_store.download_file("team/models/none.pt", tmp_path / "none.pt")
    assert f"s3://{object_store.bucket}/team/models/none.pt" in str(info.value)
    assert not (tmp_path / "none.pt").exists()
    with pytest.raises(StorageError, match="no objects under this prefix"):
        object_store.download_dir("team/datasets/absent", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="not a file"):
        object_store.upload_file(tmp_path / "nothing.bin", "x")


def test_key_escaping_the_target_is_refused(object_store: ObjectStore, tmp_path: Path) -> None:
    src = _write(tmp_path / "x.bin", b"x")
    object_store.upload_file(src, "team/datasets/evil/../../../escape.bin")
    keys = object_store.list_keys("team/datasets/evil")
    assert keys == ["team/datasets/evil/../../../escape.bin"]
    with pytest.raises(StorageError, match="outside"):
        object_store.download_dir("team/datasets/evil", tmp_path / "target" / "deep")
    assert not list(tmp_path.rglob("escape.bin"))


def _count_attempts(store: ObjectStore) -> list[str]:
    attempts: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: attempts.append(kw["request"].url))
    return attempts


def test_unreachable_endpoint_fails_after_retries_in_bounded_time(tmp_path: Path) -> None:
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
        store.download_file("team/datasets/a.bin", tmp_path / "a.bin")
    elapsed = time.monotonic() - start
    assert len(attempts) == 3
    assert elapsed < 15
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert "s3://glcf/team/datasets/a.bin" in message
    assert TEST_SECRET_ACCESS_KEY not in message
    assert TEST_ACCESS_KEY_ID not in message


def test_silent_server_hits_read_timeout_after_retries(tmp_path: Path) -> None:
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
        src = _write(tmp_path / "r.json", b"{}")
        start = time.monotonic()
        with pytest.raises(StorageError, match="timeout") as info:
            store.upload_file(src, "team/reports/r.json")
        elapsed = time.monotonic() - start
    assert len(attempts) == 2
    assert 0.9 < elapsed < 15
    assert f"127.0.0.1:{port}" in str(info.value)


def test_no_credential_in_storage_logs_or_errors(
    object_store: ObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipelines")
    messages: list[str] = []
    src = _write(tmp_path / "a.bin", b"abc")
    object_store.upload_file(src, "team/datasets/a.bin")
    object_store.download_file("team/datasets/a.bin", tmp_path / "b.bin")
    object_store.client.put_object(Bucket=object_store.bucket, Key="team/datasets/a.bin", Body=b"xyz")
    for action in (
        lambda: object_store.download_file("team/datasets/a.bin", tmp_path / "c.bin"),
        lambda: object_store.download_file("team/datasets/missing.bin", tmp_path / "d.bin"),
        lambda: ObjectStore(object_store.client, "no-such-bucket-glcf").upload_file(src, "k"),
    ):
        with pytest.raises(StorageError) as info:
            action()
        messages.append(str(info.value))
    text = "\n".join(messages + [r.getMessage() for r in caplog.records] + [repr(object_store.client.meta.config)])
    assert "uploaded" in text  # the storage logs were captured
    assert TEST_SECRET_ACCESS_KEY not in text
    assert TEST_ACCESS_KEY_ID not in text


def test_scrub_removes_secrets_from_server_messages(object_store: ObjectStore) -> None:
    err = object_store._fail("read", "k", f"server said: key {TEST_ACCESS_KEY_ID} secret {TEST_SECRET_ACCESS_KEY}")
    assert TEST_ACCESS_KEY_ID not in str(err)
    assert TEST_SECRET_ACCESS_KEY not in str(err)
    assert "key *** secret ***" in str(err)
