"""infra/local/stack.py end to end: up, status, env, idempotent up/down, restart, persistence, no leaked secrets."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from servers import LocalStack, make_state_dir, run_stack

from pipelines.settings import Settings
from pipelines.storage import ObjectStore

pytestmark = pytest.mark.integration


def _secrets(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "secrets.env").read_text().splitlines() if line)


def _group_pids(leader: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid="], capture_output=True, text=True, check=True).stdout
    return [int(pid) for pid, pgid in (line.split() for line in out.splitlines()) if int(pgid) == leader]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_stack_is_up_and_reports_healthy(local_stack: LocalStack) -> None:
    print(f"\nlocal stack up in {local_stack.up_seconds:.1f} s; per service: {local_stack.startup_s}")
    assert set(local_stack.startup_s) == {"postgres", "s3", "mlflow", "prefect"}
    status = local_stack.run("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == 4
    assert all(f"127.0.0.1:{port}" in status.stdout for port in local_stack.ports.values())


def test_env_prints_what_clients_need(local_stack: LocalStack) -> None:
    out = local_stack.run("env")
    assert out.returncode == 0
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.stdout.splitlines())
    assert exported == local_stack.env
    assert exported["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{local_stack.ports['mlflow']}"
    assert exported["PREFECT_API_URL"] == f"http://127.0.0.1:{local_stack.ports['prefect']}/api"
    assert exported["GLCF_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{local_stack.ports['s3']}"
    for name in ("secrets.env", "client.env", "client.json"):
        assert (local_stack.state_dir / name).stat().st_mode & 0o777 == 0o600


def test_services_answer_as_configured(local_stack: LocalStack) -> None:
    import psycopg2

    sec = _secrets(local_stack.state_dir)
    conn = psycopg2.connect(
        host="127.0.0.1", port=local_stack.ports["postgres"], user="glcf", password=sec["PG_PASSWORD"], dbname="mlflow"
    )
    with conn, conn.cursor() as cur:  # MLflow migrated its schema into PostgreSQL
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = {row[0] for row in cur.fetchall()}
    conn.close()
    assert {"experiments", "runs", "metrics", "registered_models"} <= tables

    with urllib.request.urlopen(f"{local_stack.prefect_api_url}/health", timeout=10) as resp:
        assert json.loads(resp.read()) is True

    store = ObjectStore.from_settings(
        Settings(
            aws_access_key_id=local_stack.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=local_stack.env["AWS_SECRET_ACCESS_KEY"],
            glcf_s3_endpoint_url=local_stack.s3_endpoint,
            glcf_s3_bucket=local_stack.env["GLCF_S3_BUCKET"],
        )
    )
    assert store.ensure_bucket() is False  # `up` created it


def test_no_secret_in_logs_argv_or_state_json(local_stack: LocalStack) -> None:
    secrets = [v for v in _secrets(local_stack.state_dir).values() if len(v) >= 12]
    assert len(secrets) >= 4
    logs = "\n".join(p.read_text(errors="replace") for p in (local_stack.state_dir / "logs").glob("*.log"))
    assert "Created admin user" in logs or "glcf-admin" in logs  # MLflow bootstrapped its admin (logs are real)
    cmdlines = []
    for name in ("s3", "mlflow", "prefect"):
        leader = int((local_stack.state_dir / "pids" / f"{name}.pid").read_text())
        for pid in _group_pids(leader):
            try:
                cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except FileNotFoundError:
                continue
    assert any("--backend-store-uri" in c for c in cmdlines)
    public = logs + "\n".join(cmdlines) + (local_stack.state_dir / "stack.json").read_text() + local_stack.up_output
    for secret in secrets:
        assert secret not in public


def test_up_again_is_idempotent(local_stack: LocalStack) -> None:
    pids_before = {p.name: p.read_text() for p in (local_stack.state_dir / "pids").glob("*.pid")}
    out = local_stack.run("up", "--s3", "moto", "--no-prefect-ui", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("already running") == 4
    assert {p.name: p.read_text() for p in (local_stack.state_dir / "pids").glob("*.pid")} == pids_before


def test_port_in_use_is_refused_clearly() -> None:
    state = make_state_dir()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            out = run_stack("--state-dir", str(state), "up", "--services", "s3", "--s3", "moto", f"--s3-port={port}")
        assert out.returncode == 2
        assert f"port {port} for s3 is already in use" in out.stdout
        assert not (state / "pids" / "s3.pid").exists()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_partial_stack_down_restart_and_persistence() -> None:
    """PostgreSQL keeps its data across down/up; down stops every process of the group and is idempotent."""
    import psycopg2

    state = make_state_dir()
    args = ("--state-dir", str(state))
    try:
        up = run_stack(*args, "up", "--services", "postgres,s3", "--s3", "moto", "--postgres-port=0", "--s3-port=0")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "mlflow" not in up.stdout
        assert set(json.loads((state / "client.json").read_text())) >= {"GLCF_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"}
        assert "MLFLOW_TRACKING_URI" not in json.loads((state / "client.json").read_text())
        conf = json.loads((state / "stack.json").read_text())
        sec = _secrets(state)

        def connect() -> psycopg2.extensions.connection:
            return psycopg2.connect(
                host="127.0.0.1",
                port=conf["ports"]["postgres"],
                user="glcf",
                password=sec["PG_PASSWORD"],
                dbname="mlflow",
            )

        with connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE survives (v text); INSERT INTO survives VALUES ('kept')")
        conn.close()
        leaders = {name: int((state / "pids" / f"{name}.pid").read_text()) for name in ("s3",)}
        leaders["postgres"] = int((state / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        members = [pid for leader in leaders.values() for pid in _group_pids(leader)] + list(leaders.values())

        down = run_stack(*args, "down")
        assert down.returncode == 0
        assert down.stdout.count("stopped") + down.stdout.count("killed") == 2
        assert not [pid for pid in members if _alive(pid)]
        again = run_stack(*args, "down")
        assert again.returncode == 0
        assert again.stdout.count("not running") == 4
        assert run_stack(*args, "status").returncode == 1

        restart = run_stack(
            *args, "up", "--services", "postgres,s3", "--s3", "moto",
            f"--postgres-port={conf['ports']['postgres']}", "--s3-port=0",
        )  # fmt: skip
        assert restart.returncode == 0, restart.stdout + restart.stderr
        with connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM survives")
            assert cur.fetchall() == [("kept",)]
        conn.close()
    finally:
        run_stack(*args, "down")
        shutil.rmtree(state, ignore_errors=True)


def test_s3rver_keeps_objects_across_restart() -> None:
    """The dev stack's default S3 server stores on disk: an object survives ``down`` + ``up``."""
    state = make_state_dir()
    args = ("--state-dir", str(state))
    try:
        up = run_stack(*args, "up", "--services", "s3", "--s3", "s3rver", "--s3-port=0", timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr
        env = json.loads((state / "client.json").read_text())

        def store() -> ObjectStore:
            env = json.loads((state / "client.json").read_text())
            settings = Settings(
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                glcf_s3_endpoint_url=env["GLCF_S3_ENDPOINT_URL"],
                glcf_s3_bucket=env["GLCF_S3_BUCKET"],
            )
            return ObjectStore.from_settings(settings)

        data = os.urandom(200_000)
        first = store()
        first.client.put_object(Bucket=first.bucket, Key="models/m.bin", Body=data)
        assert run_stack(*args, "down").returncode == 0
        assert run_stack(*args, "up", "--services", "s3", "--s3", "s3rver", "--s3-port=0").returncode == 0
        assert json.loads((state / "client.json").read_text())["GLCF_S3_ENDPOINT_URL"] != env["GLCF_S3_ENDPOINT_URL"]
        second = store()
        assert second.client.get_object(Bucket=second.bucket, Key="models/m.bin")["Body"].read() == data
    finally:
        run_stack(*args, "down")
        shutil.rmtree(state, ignore_errors=True)
