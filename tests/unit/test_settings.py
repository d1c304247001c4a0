"""Settings from the environment: defaults, parsing, validation and secret hiding (pipelines/settings.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from pipelines.settings import Settings, get_settings, redact_url

_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
    "GLCF_S3_ENDPOINT_URL",
    "GLCF_S3_BUCKET",
    "GLCF_S3_RETRY_MODE",
    "GLCF_S3_MAX_ATTEMPTS",
    "GLCF_S3_CONNECT_TIMEOUT",
    "GLCF_S3_READ_TIMEOUT",
    "GLCF_S3_ADDRESSING_STYLE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_mean_embedded_mode(clean_env: pytest.MonkeyPatch) -> None:
    s = get_settings()
    assert s.mlflow_tracking_uri is None
    assert s.prefect_api_url is None
    assert s.aws_secret_access_key is None
    assert s.s3_endpoint_url is None
    assert s.glcf_s3_bucket is None
    assert (s.glcf_s3_max_attempts, s.glcf_s3_retry_mode) == (5, "standard")


def test_reads_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", "pw-abcdefghijkl")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-value")
    clean_env.setenv("GLCF_S3_BUCKET", "glcf")
    clean_env.setenv("GLCF_S3_MAX_ATTEMPTS", "7")
    clean_env.setenv("GLCF_S3_READ_TIMEOUT", "2.5")
    clean_env.setenv("GLCF_S3_RETRY_MODE", "adaptive")
    s = get_settings()
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert s.mlflow_tracking_password is not None
    assert s.mlflow_tracking_password.get_secret_value() == "pw-abcdefghijkl"
    assert s.aws_secret_access_key is not None
    assert s.aws_secret_access_key.get_secret_value() == "s3-secret-value"
    assert s.glcf_s3_bucket == "glcf"
    assert (s.glcf_s3_max_attempts, s.glcf_s3_read_timeout, s.glcf_s3_retry_mode) == (7, 2.5, "adaptive")


def test_endpoint_precedence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MLFLOW_S3_ENDPOINT_URL", "http://mlflow-s3:8333")
    assert get_settings().s3_endpoint_url == "http://mlflow-s3:8333"
    clean_env.setenv("GLCF_S3_ENDPOINT_URL", "http://glcf-s3:9000")
    assert get_settings().s3_endpoint_url == "http://glcf-s3:9000"


def test_empty_variable_counts_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", "")
    assert get_settings().mlflow_tracking_uri is None


def test_secrets_never_in_repr_or_str(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", "track-pass-123456")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
    clean_env.setenv("MLFLOW_TRACKING_URI", "https://bob:url-pass-987@mlflow.example:443/path")
    s = get_settings()
    for text in (repr(s), str(s)):
        for secret in ("track-pass-123456", "AKIAEXAMPLEKEYID", "wJalrXUtnFEMI-secret", "url-pass-987"):
            assert secret not in text
    assert "bob:***@mlflow.example:443" in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("GLCF_S3_MAX_ATTEMPTS", "0", "glcf_s3_max_attempts"),
        ("GLCF_S3_MAX_ATTEMPTS", "many", "glcf_s3_max_attempts"),
        ("GLCF_S3_CONNECT_TIMEOUT", "-1", "glcf_s3_connect_timeout"),
        ("GLCF_S3_RETRY_MODE", "legacy", "glcf_s3_retry_mode"),
        ("GLCF_S3_BUCKET", "s3://glcf/data", "glcf_s3_bucket"),
        ("GLCF_S3_ENDPOINT_URL", "127.0.0.1:9000", "glcf_s3_endpoint_url"),
    ],
)
def test_bad_values_name_the_field(clean_env: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert field in str(info.value)


def test_validation_errors_do_not_echo_values(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GLCF_S3_ENDPOINT_URL", "ftp://user:leaky-password@host")
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert "leaky-password" not in str(info.value)


def test_overrides_take_precedence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GLCF_S3_BUCKET", "from-env")
    assert get_settings(glcf_s3_bucket="explicit").glcf_s3_bucket == "explicit"
    assert Settings(glcf_s3_bucket="direct").glcf_s3_bucket == "direct"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://u:p@h:1/x?q=1", "http://u:***@h:1/x?q=1"),
        ("http://h:1/x", "http://h:1/x"),
        ("postgresql+psycopg2://glcf:pw@127.0.0.1/db", "postgresql+psycopg2://glcf:***@127.0.0.1/db"),
        (None, None),
    ],
)
def test_redact_url(url: str | None, expected: str | None) -> None:
    assert redact_url(url) == expected


def test_import_reads_nothing_and_pulls_no_heavy_modules() -> None:
    code = (
        "import sys, pipelines.settings as s; "
        "heavy = [m for m in ('boto3', 'mlflow', 'prefect', 'torch') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
