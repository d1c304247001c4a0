"""S3-compatible server of the local stack: npm's ``s3rver`` (on disk, default) or ``moto_server`` (in memory).

* ``s3rver`` keeps objects under ``<state>/s3``, so MLflow artifacts and DVC objects survive a restart like the
  PostgreSQL rows that point at them. Installed from the npm registry on first use into ``<state>/tools/s3rver``
  (pinned version); needs Node.js and npm. It only accepts the fixed key pair ``S3RVER``/``S3RVER``.
* ``moto_server`` (``moto[server]``, in the dev group) is in memory: every restart loses the objects. It starts in
  about 2 s and needs nothing outside the virtual environment, so the integration tests use it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from procs import ServiceError, log_tail

S3_KINDS = ("s3rver", "moto")
S3RVER_VERSION = "3.7.1"


def s3rver_credentials() -> tuple[str, str]:
    """The only key pair s3rver accepts (it is not a secret; the store listens on 127.0.0.1 only)."""
    return "S3RVER", "S3RVER"


def _install_s3rver(tools: Path, log: Path) -> Path:
    script = tools / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        msg = "s3rver needs Node.js and npm (Debian: apt-get install nodejs npm); or use --s3 moto"
        raise ServiceError(msg)
    tools.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        cmd = [npm, "install", "--prefix", str(tools), "--no-audit", "--no-fund", "--no-save"]
        proc = subprocess.run(
            [*cmd, f"s3rver@{S3RVER_VERSION}"], stdout=fh, stderr=subprocess.STDOUT, timeout=300, check=False
        )
    if proc.returncode != 0 or not script.exists():
        msg = f"npm install s3rver@{S3RVER_VERSION} failed; last lines of {log}:\n{log_tail(log)}"
        raise ServiceError(msg)
    return script


def s3_command(kind: str, port: int, state: Path, bindir: Path) -> list[str]:
    """The command line of the S3 server (installing s3rver first if needed)."""
    if kind == "moto":
        return [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    if kind == "s3rver":
        node = shutil.which("node")
        script = _install_s3rver(state / "tools" / "s3rver", state / "logs" / "s3-install.log")
        data = state / "s3"
        data.mkdir(parents=True, exist_ok=True)
        return [node or "node", str(script), "-a", "127.0.0.1", "-p", str(port), "-d", str(data), "--no-vhost-buckets"]
    msg = f"unknown S3 server {kind!r}: expected one of {S3_KINDS}"
    raise ValueError(msg)


def ensure_buckets(endpoint: str, sec: dict[str, str], buckets: list[str]) -> None:
    """Create the stack's buckets through the project's storage module (the one place that uses boto3)."""
    try:
        from pipelines.settings import Settings
        from pipelines.storage import ObjectStore, make_client
    except ImportError as exc:  # pragma: no cover - the project is not installed in this Python
        msg = f"run stack.py with the project's Python (.venv/bin/python): {exc} (from {sys.executable})"
        raise ServiceError(msg) from None
    settings = Settings(
        aws_access_key_id=sec["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=sec["S3_SECRET_ACCESS_KEY"],
        glcf_s3_endpoint_url=endpoint,
        glcf_s3_max_attempts=3,
    )
    client = make_client(settings)
    for bucket in buckets:
        ObjectStore(client, bucket).ensure_bucket()
