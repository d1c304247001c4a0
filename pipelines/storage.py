"""S3 buckets through boto3: the local and compose stacks create theirs here (docs/operations.md, Storage).

The only module of the project that imports boto3. The client is built from :class:`~pipelines.settings.Settings`
by :func:`make_client` (endpoint URL, region, botocore retries and timeouts) and passed in: there is no
module-level client. :meth:`ObjectStore.ensure_bucket` is what the product calls: ``infra/local/s3server.py``
for the plain-process stack and the ``s3-init`` service of ``infra/docker-compose.yml``. Errors are
:class:`StorageError` naming the bucket and the endpoint, never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.settings import Settings, get_settings, redact_url

logger = logging.getLogger(__name__)

__all__ = ["ObjectStore", "StorageError", "make_client"]

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class StorageError(RuntimeError):
    """An S3 operation failed; the message names the bucket and the endpoint."""


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
    """A bucket on an S3-compatible endpoint.

    Args:
        client: an S3 client (see :func:`make_client`).
        bucket: bucket name.
        secrets: strings scrubbed from every error message (the credentials).
    """

    def __init__(self, client: BaseClient, bucket: str, secrets: Iterable[str] = ()) -> None:
        if not bucket:
            msg = "ObjectStore needs a bucket name (set GLCF_S3_BUCKET)"
            raise ValueError(msg)
        self.client = client
        self.bucket = bucket
        self._secrets = tuple(s for s in secrets if s)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, client: BaseClient | None = None) -> ObjectStore:
        """The bucket of ``GLCF_S3_BUCKET``, with a client from :func:`make_client`."""
        settings = settings or get_settings()
        if not settings.glcf_s3_bucket:
            msg = "GLCF_S3_BUCKET is not set: the S3 storage needs a bucket name"
            raise ValueError(msg)
        secrets = [s.get_secret_value() for s in (settings.aws_access_key_id, settings.aws_secret_access_key) if s]
        return cls(client or make_client(settings), settings.glcf_s3_bucket, secrets=secrets)

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to (password-free)."""
        return redact_url(self.client.meta.endpoint_url) or "default AWS endpoint"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(self, action: str, exc: BaseException | str) -> StorageError:
        reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return StorageError(self._scrub(f"{action} bucket {self.bucket!r} at {self.endpoint} failed: {reason}"))

    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist. Returns True when it was created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                err = self._fail("check", exc)
                raise err from None
        except BotoCoreError as exc:
            err = self._fail("check", exc)
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
            err = self._fail("create", exc)
            raise err from None
        except BotoCoreError as exc:
            err = self._fail("create", exc)
            raise err from None
        logger.info("created bucket %s at %s", self.bucket, self.endpoint)
        return True
