"""``glcf remote configure`` + ``dvc push``/``dvc pull`` against a real S3 server (moto_server on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

from pipelines.settings import Settings
from pipelines.storage import ObjectStore

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _env(with_credentials: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLCF_", "MLFLOW_"))}
    env.update({"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"})
    env.update({"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if with_credentials:
        env.update({"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY})
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300, check=False)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _glcf(*args: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    return _run([str(BIN / "glcf"), "remote", "configure", *args], cwd, env, ok)


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q", "-b", "main"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["git", "commit", "-q", "-m", "init"], repo)
    return repo


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    name = f"glcf-dvc-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        glcf_s3_endpoint_url=moto_endpoint,
        glcf_s3_bucket=name,
    )
    ObjectStore.from_settings(settings).ensure_bucket()
    return name


def _dataset(root: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    files = {
        "train/good/000.png": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "train/good/001.png": rng.integers(0, 256, 9000, dtype=np.uint8).tobytes(),
        "test/logical_anomalies/000.png": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "manifest.json": b'{"category": "breakfast_box"}\n',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _config(repo: Path, level: str = "repo") -> dict:
    """The config of one level as DVC itself reads it."""
    from dvc.config import Config

    return Config(dvc_dir=str(repo / ".dvc")).load_one(level)


def test_push_and_pull_round_trip(dvc_repo: Path, bucket: str, moto_endpoint: str) -> None:
    out = _glcf(
        "--name", "team", "--url", f"s3://{bucket}/dvc", "--endpoint-url", moto_endpoint,
        "--region", "us-east-1", "--default", cwd=dvc_repo,
    )  # fmt: skip
    assert "credentials: read from the environment" in out.stdout
    committed = (dvc_repo / ".dvc" / "config").read_text()
    conf = _config(dvc_repo)
    assert conf["core"]["remote"] == "team"
    assert conf["remote"]["team"] == {"url": f"s3://{bucket}/dvc", "endpointurl": moto_endpoint, "region": "us-east-1"}
    assert TEST_SECRET_ACCESS_KEY not in committed
    assert TEST_ACCESS_KEY_ID not in committed
    assert not (dvc_repo / ".dvc" / "config.local").exists()
    # `dvc remote list` (DVC's own reader) sees the remote as configured.
    assert f"s3://{bucket}/dvc" in _run(["dvc", "remote", "list"], dvc_repo).stdout

    files = _dataset(dvc_repo / "data")
    _run(["dvc", "add", "-q", "data"], dvc_repo)
    _run(["git", "add", "data.dvc", ".gitignore", ".dvc/config"], dvc_repo)
    _run(["git", "commit", "-q", "-m", "data"], dvc_repo)
    _run(["dvc", "push", "-q"], dvc_repo)

    shutil.rmtree(dvc_repo / "data")
    shutil.rmtree(dvc_repo / ".dvc" / "cache")
    _run(["dvc", "pull", "-q"], dvc_repo)
    assert _read_tree(dvc_repo / "data") == files


def test_local_credentials_stay_out_of_git(dvc_repo: Path, bucket: str, moto_endpoint: str) -> None:
    _glcf(
        "--name", "team", "--url", f"s3://{bucket}/dvc", "--endpoint-url", moto_endpoint,
        "--default", "--local-credentials", cwd=dvc_repo,
    )  # fmt: skip
    local = _config(dvc_repo, "local")["remote"]["team"]
    assert local == {"access_key_id": TEST_ACCESS_KEY_ID, "secret_access_key": TEST_SECRET_ACCESS_KEY}
    assert TEST_SECRET_ACCESS_KEY not in (dvc_repo / ".dvc" / "config").read_text()
    assert (dvc_repo / ".dvc" / "config.local").stat().st_mode & 0o777 == 0o600
    assert _run(["git", "check-ignore", ".dvc/config.local"], dvc_repo).returncode == 0
    _run(["git", "add", "-A"], dvc_repo)
    staged = _run(["git", "diff", "--cached", "--name-only"], dvc_repo).stdout.split()
    assert ".dvc/config" in staged
    assert ".dvc/config.local" not in staged

    # push/pull with no AWS variables at all: the credentials come from .dvc/config.local
    files = _dataset(dvc_repo / "data")
    _run(["dvc", "add", "-q", "data"], dvc_repo)
    _run(["dvc", "push", "-q"], dvc_repo, env=_env(with_credentials=False))
    shutil.rmtree(dvc_repo / "data")
    shutil.rmtree(dvc_repo / ".dvc" / "cache")
    _run(["dvc", "pull", "-q"], dvc_repo, env=_env(with_credentials=False))
    assert _read_tree(dvc_repo / "data") == files


def test_reconfigure_is_idempotent_and_updates(dvc_repo: Path, bucket: str, moto_endpoint: str) -> None:
    args = ["--name", "team", "--url", f"s3://{bucket}/dvc", "--endpoint-url", moto_endpoint]
    _glcf(*args, cwd=dvc_repo)
    first = (dvc_repo / ".dvc" / "config").read_text()
    _glcf(*args, cwd=dvc_repo)
    assert (dvc_repo / ".dvc" / "config").read_text() == first
    assert "remote" not in _config(dvc_repo).get("core", {})  # no --default: the default remote is untouched
    _glcf("--name", "team", "--url", f"s3://{bucket}/other", cwd=dvc_repo)
    assert _config(dvc_repo)["remote"]["team"] == {"url": f"s3://{bucket}/other"}


def test_bad_input_is_refused_with_a_clear_message(dvc_repo: Path, tmp_path: Path, moto_endpoint: str) -> None:
    bad_url = _glcf("--name", "t", "--url", "https://bucket/x", cwd=dvc_repo, ok=False)
    assert bad_url.returncode == 2
    assert "--url must be s3://bucket[/prefix]" in bad_url.stderr
    bad_ep = _glcf("--name", "t", "--url", "s3://b/x", "--endpoint-url", "127.0.0.1:9000", cwd=dvc_repo, ok=False)
    assert "--endpoint-url must be an http(s) URL" in bad_ep.stderr
    (tmp_path / "plain").mkdir()
    not_repo = _glcf("--name", "t", "--url", "s3://b/x", cwd=tmp_path / "plain", ok=False)
    assert not_repo.returncode == 2
    assert "not inside a DVC repository" in not_repo.stderr
    no_creds = _glcf("--name", "t", "--url", "s3://b/x", "--local-credentials", cwd=dvc_repo,
                     env=_env(with_credentials=False), ok=False)  # fmt: skip
    assert "needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in no_creds.stderr
    assert not (dvc_repo / ".dvc" / "config.local").exists()


def test_credentials_in_committed_config_are_refused(dvc_repo: Path, moto_endpoint: str) -> None:
    _run(["dvc", "remote", "add", "team", "s3://b/dvc"], dvc_repo)
    _run(["dvc", "remote", "modify", "team", "secret_access_key", "committed-by-mistake"], dvc_repo)
    out = _glcf("--name", "team", "--url", "s3://b/dvc", "--endpoint-url", moto_endpoint, cwd=dvc_repo, ok=False)
    assert out.returncode == 2
    assert "secret_access_key in the committed .dvc/config" in out.stderr
    assert "committed-by-mistake" not in out.stderr
