"""Settings from the environment: the one place in the project that reads it (docs/operations.md, Settings and secrets).

Every field maps to an environment variable of the same name (case-insensitive); ``.env.example`` documents them all.
Nothing is read at import: call :func:`get_settings` (or build :class:`Settings` directly, e.g. with keyword arguments
in tests). Secrets are :class:`pydantic.SecretStr`, so ``repr``/``str`` of a settings object never shows them, and
URLs carrying ``user:password@`` are shown with the password masked.

To extend: add a typed field whose name is the environment variable in lower case (``glcf_foo: int = 3`` reads
``GLCF_FOO``), with a default and, where a bad value is possible, a constraint (``Field(ge=1)``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "THREADS_VARIABLE",
    "Settings",
    "apply_torch_threads",
    "get_settings",
    "redact_url",
    "threads_shared_by",
    "torch_threads_setting",
]


def redact_url(url: str | None) -> str | None:
    """Mask the password of a URL's ``user:password@`` part, keep everything else.

    Args:
        url: any URL or ``None``.

    Returns:
        The URL with its password replaced by ``***`` (``None`` stays ``None``).
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Settings(BaseSettings):
    """Environment settings of the pipeline and the storage layer.

    Field names are the environment variable names in lower case. ``None`` means "not configured": the
    pipeline then uses its embedded defaults (local SQLite MLflow store, no Prefect server, no S3).
    """

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        validate_default=True,
        frozen=True,
        hide_input_in_errors=True,
    )

    # MLflow tracking. None = the pipeline's local SQLite store.
    mlflow_tracking_uri: str | None = None
    mlflow_tracking_username: str | None = None
    mlflow_tracking_password: SecretStr | None = None

    # Prefect. None = Prefect's own default (a temporary local server). Prefect reads both itself as well.
    prefect_api_url: str | None = None
    prefect_api_auth_string: SecretStr | None = None

    # S3 credentials and endpoint (boto3 reads the same variables; we read them here to pass them explicitly).
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_default_region: str = "us-east-1"
    mlflow_s3_endpoint_url: str | None = None
    glcf_s3_endpoint_url: str | None = None

    # The team bucket: the stacks create it (pipelines.storage); MLflow's artifact store is s3://<bucket>/mlflow.
    glcf_s3_bucket: str | None = None

    # Reliability: botocore retries and timeouts.
    glcf_s3_retry_mode: Literal["standard", "adaptive"] = "standard"
    glcf_s3_max_attempts: int = Field(default=5, ge=1, le=20)
    glcf_s3_connect_timeout: float = Field(default=5.0, gt=0, le=300)
    glcf_s3_read_timeout: float = Field(default=60.0, gt=0, le=3600)
    glcf_s3_addressing_style: Literal["auto", "path", "virtual"] = "path"

    # Scale-out and schedules (pipelines.flows.category.task_runner, glcf deploy).
    glcf_dask_address: str | None = None  # scheduler of a running Dask cluster, e.g. tcp://10.0.0.5:8786
    glcf_ray_address: str | None = None  # a running Ray cluster, e.g. ray://10.0.0.6:10001
    glcf_cpu_pool: str = "glcf-cpu"  # Prefect work pool of the scheduled category runs
    glcf_gpu_pool: str = "glcf-gpu"  # Prefect work pool of GPU workers (glcf deploy --gpu)
    glcf_gpu_count: int = Field(default=1, ge=1, le=1024)  # concurrency limit of the GPU pool: one run per GPU

    # torch's intra-op threads per process (training, calibration, evaluation, serving, predict); None: torch's
    # own count split between the processes or threads that run side by side (docs/threads.md)
    glcf_threads: int | None = Field(default=None, ge=1, le=1024)

    @field_validator("glcf_cpu_pool", "glcf_gpu_pool")
    @classmethod
    def _check_pool(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            msg = f"work pool name must be letters, digits, '-', '_' or '.', got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("glcf_s3_bucket")
    @classmethod
    def _check_bucket(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("s3://") or "/" in value):
            msg = f"GLCF_S3_BUCKET must be a bucket name, not a URL or path: {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("mlflow_s3_endpoint_url", "glcf_s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            msg = f"S3 endpoint URL must start with http:// or https://, got {redact_url(value)!r}"
            raise ValueError(msg)
        return value

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint for the storage layer: ``GLCF_S3_ENDPOINT_URL``, else ``MLFLOW_S3_ENDPOINT_URL``."""
        return self.glcf_s3_endpoint_url or self.mlflow_s3_endpoint_url

    def __repr_args__(self) -> Any:
        """Hide passwords embedded in URLs (SecretStr fields already mask themselves)."""
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                yield name, redact_url(value)
            else:
                yield name, value


def get_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment now (not cached: tests and long-lived workers see changes).

    Args:
        **overrides: field values that take precedence over the environment (e.g. in tests).

    Returns:
        A frozen :class:`Settings`.

    Raises:
        pydantic.ValidationError: a variable has a bad value; the message names the field.
    """
    return Settings(**overrides)


#: The variable of :attr:`Settings.glcf_threads`; child processes (Dask workers, the scoring server) get it.
THREADS_VARIABLE = "GLCF_THREADS"


def torch_threads_setting(share: int = 1) -> int:
    """``GLCF_THREADS``, else torch's own thread count split between ``share`` side-by-side runs."""
    from glcf.runtime import torch_threads

    return torch_threads(get_settings().glcf_threads, share=share)


def apply_torch_threads(share: int = 1) -> int:
    """Set torch's intra-op threads of the calling thread (and those it starts): :func:`torch_threads_setting`.

    Returns:
        The thread count now in use.
    """
    from glcf.runtime import set_torch_threads

    return set_torch_threads(torch_threads_setting(share))


@contextlib.contextmanager
def threads_shared_by(share: int) -> Iterator[int]:
    """Pin ``GLCF_THREADS`` to each run's part while ``share`` runs use the cores side by side.

    Processes started meanwhile (local Dask workers) inherit it, and each stage applies it in its
    own thread; the variable is restored afterwards.
    """
    count = torch_threads_setting(share)
    previous = os.environ.get(THREADS_VARIABLE)
    os.environ[THREADS_VARIABLE] = str(count)
    try:
        yield count
    finally:
        if previous is None:
            os.environ.pop(THREADS_VARIABLE, None)
        else:
            os.environ[THREADS_VARIABLE] = previous
