"""S3 storage through boto3: datasets, reports and exported models (docs/operations.md, Storage).

The only module of the project that imports boto3. The client is built from :class:`~pipelines.settings.Settings`
by :func:`make_client` (endpoint URL, region, botocore retries and timeouts) and passed in: there is no
module-level client.

Integrity: every upload stores the file's SHA-256 as object metadata (``x-amz-meta-glcf-sha256``) and checks size
and metadata with a HEAD afterwards; every download goes to a temporary file next to the target, is hashed, compared
with that metadata and only then renamed over the target, so a failed or corrupt download never clobbers a good
local file. The ETag is *not* used as a checksum: it is the MD5 of the body only for single-part uploads without
SSE-KMS; for multipart uploads it is ``md5(concat(part md5s))-<parts>``, which depends on the part size.

Transfers use boto3's managed transfer (``client.upload_file``/``download_file`` with a ``TransferConfig``):
multipart and threading come from boto3, not from hand-written code. Errors are :class:`StorageError` naming the
``s3://bucket/key`` and the endpoint, never a credential.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tqdm.auto import tqdm

from pipelines.io import sha256_and_size
from pipelines.settings import Settings, get_settings, redact_url

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "SHA256_METADATA_KEY",
    "ChecksumMismatchError",
    "MissingChecksumError",
    "ObjectStore",
    "StorageError",
    "TransferResult",
    "make_client",
]

SHA256_METADATA_KEY = "glcf-sha256"
KINDS = ("datasets", "reports", "models")
_TRANSPORT_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError, S3TransferFailedError)
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
T = TypeVar("T")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class StorageError(RuntimeError):
    """An S3 operation failed; the message names the object and the endpoint."""


class ChecksumMismatchError(StorageError):
    """The bytes transferred do not match the SHA-256 recorded with the object."""


class MissingChecksumError(StorageError):
    """The object carries no ``glcf-sha256`` metadata, so its content cannot be verified."""


@dataclass(frozen=True)
class TransferResult:
    """One verified transfer."""

    bucket: str
    key: str
    path: Path
    size: int
    sha256: str

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


def make_client(settings: Settings | None = None) -> BaseClient:
    """Build an S3 client from settings: endpoint, region, credentials, retries and timeouts.

    Args:
        settings: the settings; read from the environment when ``None``.

    Returns:
        A botocore S3 client. Credentials not set in ``settings`` fall back to boto3's chain (IAM role, profile).
    """
    settings = settings or get_settings()
    config = Config(
        region_name=settings.aws_default_region,
        connect_timeout=settings.glcf_s3_connect_timeout,
        read_timeout=settings.glcf_s3_read_timeout,
        retries={"mode": settings.glcf_s3_retry_mode, "total_max_attempts": settings.glcf_s3_max_attempts},
        s3={"addressing_style": settings.glcf_s3_addressing_style},
    )
    key_id = settings.aws_access_key_id.get_secret_value() if settings.aws_access_key_id else None
    secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
    session = boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=settings.aws_default_region
    )
    return session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)


class ObjectStore:
    """A bucket (and optional key prefix) on an S3-compatible endpoint, with verified transfers.

    Args:
        client: an S3 client (see :func:`make_client`).
        bucket: bucket name.
        prefix: key prefix prepended by :meth:`key` (no leading/trailing ``/``).
        transfer_config: boto3 managed-transfer settings (multipart threshold, part size, threads).
        secrets: strings scrubbed from every error message and log line (the credentials).
    """

    def __init__(
        self,
        client: BaseClient,
        bucket: str,
        prefix: str = "",
        transfer_config: TransferConfig | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if not bucket:
            msg = "ObjectStore needs a bucket name (set GLCF_S3_BUCKET)"
            raise ValueError(msg)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.transfer_config = transfer_config or TransferConfig(
            multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024, max_concurrency=4
        )
        self._secrets = tuple(s for s in secrets if s)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, client: BaseClient | None = None) -> ObjectStore:
        """The store of ``GLCF_S3_BUCKET``/``GLCF_S3_PREFIX``, with a client from :func:`make_client`."""
        settings = settings or get_settings()
        if not settings.glcf_s3_bucket:
            msg = "GLCF_S3_BUCKET is not set: the S3 storage needs a bucket name"
            raise ValueError(msg)
        secrets = [s.get_secret_value() for s in (settings.aws_access_key_id, settings.aws_secret_access_key) if s]
        return cls(client or make_client(settings), settings.glcf_s3_bucket, settings.glcf_s3_prefix, secrets=secrets)

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to (password-free)."""
        return redact_url(self.client.meta.endpoint_url) or "default AWS endpoint"

    def key(self, kind: str, *parts: str) -> str:
        """Object key ``<prefix>/<kind>/<parts...>`` for ``kind`` in ``datasets``, ``reports``, ``models``."""
        if kind not in KINDS:
            msg = f"unknown storage kind {kind!r}: expected one of {KINDS}"
            raise ValueError(msg)
        return "/".join(p.strip("/") for p in (self.prefix, kind, *parts) if p.strip("/"))

    def uri(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    # -- errors ---------------------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(self, action: str, key: str | None, exc: BaseException | str) -> StorageError:
        target = self.uri(key) if key is not None else f"bucket {self.bucket!r}"
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return StorageError(self._scrub(f"{action} {target} at {self.endpoint} failed: {reason}"))

    def _call(self, action: str, key: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except _TRANSPORT_ERRORS as exc:
            err = self._fail(action, key, exc)
        raise err from None

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            err = self._fail("read", key, "object not found" if _code(exc) in _NOT_FOUND else exc)
        except BotoCoreError as exc:
            err = self._fail("read", key, exc)
        raise err from None

    # -- buckets --------------------------------------------------------------------------------------------------
    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist. Returns True when it was created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                err = self._fail("check", None, exc)
                raise err from None
        except BotoCoreError as exc:
            err = self._fail("check", None, exc)
            raise err from None
        else:
            return False
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return False
            err = self._fail("create", None, exc)
            raise err from None
        except BotoCoreError as exc:
            err = self._fail("create", None, exc)
            raise err from None
        logger.info("created bucket %s at %s", self.bucket, self.endpoint)
        return True

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False
            err = self._fail("check", key, exc)
            raise err from None
        except BotoCoreError as exc:
            err = self._fail("check", key, exc)
            raise err from None
        return True

    # -- files ----------------------------------------------------------------------------------------------------
    def upload_file(self, path: str | os.PathLike[str], key: str) -> TransferResult:
        """Upload one file with its SHA-256 as metadata, then check size and checksum on the server (HEAD).

        Raises:
            FileNotFoundError: ``path`` is not a file.
            StorageError: the transfer failed or the server reports other size/checksum than sent.
        """
        path = Path(path)
        if not path.is_file():
            msg = f"cannot upload {path}: not a file"
            raise FileNotFoundError(msg)
        digest, size = sha256_and_size(path)
        extra = {"Metadata": {SHA256_METADATA_KEY: digest}}
        upload = self.client.upload_file
        self._call("upload", key, upload, str(path), self.bucket, key, ExtraArgs=extra, Config=self.transfer_config)
        head = self._head(key)
        remote_sha = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        if head.get("ContentLength") != size or remote_sha != digest:
            msg = (
                f"upload {self.uri(key)} at {self.endpoint}: the server reports {head.get('ContentLength')} bytes "
                f"sha256={remote_sha}, sent {size} bytes sha256={digest}"
            )
            raise ChecksumMismatchError(msg)
        logger.debug("uploaded %s -> %s (%d bytes)", path, self.uri(key), size)
        return TransferResult(self.bucket, key, path, size, digest)

    def download_file(self, key: str, path: str | os.PathLike[str], *, require_checksum: bool = True) -> TransferResult:
        """Download one object to ``path`` atomically, verifying its SHA-256 metadata.

        The object is fetched into a temporary file beside ``path``, hashed, and renamed over ``path`` only if it
        matches the SHA-256 and size read by the HEAD before the transfer (an object overwritten in between is
        reported as a mismatch, never accepted).

        Args:
            key: object key.
            path: local target; parent directories are created.
            require_checksum: if False, an object without ``glcf-sha256`` metadata is accepted on its size alone.

        Raises:
            StorageError: not found, unreachable, or transfer failure.
            MissingChecksumError: no checksum metadata and ``require_checksum``.
            ChecksumMismatchError: the downloaded bytes do not match the recorded SHA-256 or size.
        """
        path = Path(path)
        head = self._head(key)
        expected = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        if expected is None and require_checksum:
            msg = f"download {self.uri(key)} at {self.endpoint}: object has no {SHA256_METADATA_KEY} metadata to verify"
            raise MissingChecksumError(msg)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            download = self.client.download_file
            self._call("download", key, download, self.bucket, key, tmp_name, Config=self.transfer_config)
            digest, size = sha256_and_size(tmp)
            if size != head.get("ContentLength") or (expected is not None and digest != expected):
                msg = (
                    f"download {self.uri(key)} at {self.endpoint}: checksum mismatch, got {size} bytes "
                    f"sha256={digest}, expected {head.get('ContentLength')} bytes sha256={expected}; "
                    f"{path} left unchanged"
                )
                raise ChecksumMismatchError(msg)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        logger.debug("downloaded %s -> %s (%d bytes)", self.uri(key), path, size)
        return TransferResult(self.bucket, key, path, size, digest)

    # -- directories ----------------------------------------------------------------------------------------------
    def upload_dir(self, local_dir: str | os.PathLike[str], key_prefix: str) -> list[TransferResult]:
        """Upload every file under ``local_dir`` to ``key_prefix/<relative path>`` (sorted, verified)."""
        root = Path(local_dir)
        if not root.is_dir():
            msg = f"cannot upload {root}: not a directory"
            raise NotADirectoryError(msg)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        prefix = key_prefix.strip("/")
        return [
            self.upload_file(f, f"{prefix}/{f.relative_to(root).as_posix()}")
            for f in tqdm(files, desc=f"upload {self.uri(prefix)}", unit="file", disable=None)
        ]

    def list_keys(self, key_prefix: str) -> list[str]:
        """All keys under ``key_prefix/`` (sorted)."""
        prefix = key_prefix.strip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list", prefix, lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def download_dir(
        self, key_prefix: str, local_dir: str | os.PathLike[str], *, require_checksum: bool = True
    ) -> list[TransferResult]:
        """Download every object under ``key_prefix/`` into ``local_dir`` (verified, atomic per file).

        Raises:
            StorageError: nothing under the prefix, or a key that would escape ``local_dir``.
        """
        root = Path(local_dir)
        prefix = key_prefix.strip("/") + "/"
        keys = [k for k in self.list_keys(key_prefix) if not k.endswith("/")]
        if not keys:
            err = self._fail("download", prefix, "no objects under this prefix")
            raise err
        results = []
        for key in tqdm(keys, desc=f"download {self.uri(prefix)}", unit="file", disable=None):
            rel = PurePosixPath(key[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:
                err = self._fail("download", key, f"key would write outside {root}")
                raise err
            results.append(self.download_file(key, root.joinpath(*rel.parts), require_checksum=require_checksum))
        return results
