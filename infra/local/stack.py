#!/usr/bin/env python3
"""Local team stack without Docker: PostgreSQL, an S3 server, the MLflow tracking server and the Prefect server.

The same services as ``infra/docker-compose.yml``, as plain processes on 127.0.0.1, for development and the
integration tests (infra/README.md). Run it with the project's Python (``.venv/bin/python infra/local/stack.py``):
the tools (``mlflow``, ``prefect``, ``moto_server``) are taken from that interpreter's ``bin/``.

    stack.py up [--s3 s3rver|moto] [--services ...]     start what is not running, wait until healthy
    stack.py status                                      state of each service (exit 1 if one is down)
    stack.py env                                         export lines for clients (contains secrets)
    stack.py down                                        stop by PID (TERM, KILL after a grace period)

State (data, logs, PID files, generated secrets) lives in ``--state-dir`` (default ``.run/stack`` in the project,
git-ignored). Secrets are generated on the first ``up`` into ``secrets.env`` (mode 0600) and reused, because the
PostgreSQL cluster and MLflow's user store keep them. Port 0 picks a free port.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postgres
from procs import (
    ServiceError,
    free_port,
    http_ok,
    log_tail,
    pid_alive,
    port_in_use,
    read_pid,
    spawn,
    stop_pid,
    wait_until,
)
from s3server import S3_KINDS, ensure_buckets, s3_command, s3rver_credentials

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("postgres", "s3", "mlflow", "prefect")
DEFAULT_PORTS = {"postgres": 54329, "s3": 59333, "mlflow": 55055, "prefect": 54242}
BUCKET = "glcf"
MLFLOW_ADMIN = "glcf-admin"
PG_ROLE = "glcf"
# Variables of the caller that must not leak into the servers (they configure clients, not servers).
_CLIENT_VARS = ("MLFLOW_", "AWS_", "PREFECT_", "GLCF_", "PG")


def _paths(state: Path) -> dict[str, Path]:
    return {
        "json": state / "stack.json",
        "secrets": state / "secrets.env",
        "client": state / "client.env",
        "pids": state / "pids",
        "logs": state / "logs",
    }


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def load_secrets(state: Path, s3_kind: str) -> dict[str, str]:
    """The stack's secrets: generated once into ``secrets.env`` (0600), then reused."""
    path = _paths(state)["secrets"]
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                values[key] = value
    defaults = {
        "PG_SUPERUSER_PASSWORD": secrets.token_urlsafe(24),
        "PG_PASSWORD": secrets.token_urlsafe(24),
        "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        "S3_ACCESS_KEY_ID": "glcf" + secrets.token_hex(8),
        "S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    }
    changed = False
    for key, value in defaults.items():
        if key not in values:
            values[key], changed = value, True
    if s3_kind == "s3rver":  # s3rver only accepts its fixed key pair
        key_id, secret = s3rver_credentials()
        changed |= (values["S3_ACCESS_KEY_ID"], values["S3_SECRET_ACCESS_KEY"]) != (key_id, secret)
        values["S3_ACCESS_KEY_ID"], values["S3_SECRET_ACCESS_KEY"] = key_id, secret
    if changed:
        _write_private(path, "".join(f"{k}={v}\n" for k, v in values.items()))
    return values


def client_env(conf: dict, sec: dict[str, str]) -> dict[str, str]:
    """Environment a client (the pipeline, DVC, boto3) needs to use the stack's running services."""
    ports, services = conf["ports"], conf.get("services", SERVICES)
    s3_url = f"http://127.0.0.1:{ports['s3']}"
    env: dict[str, str] = {}
    if "mlflow" in services:
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{ports['mlflow']}"
        env["MLFLOW_TRACKING_USERNAME"] = MLFLOW_ADMIN
        env["MLFLOW_TRACKING_PASSWORD"] = sec["MLFLOW_ADMIN_PASSWORD"]
    if "prefect" in services:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{ports['prefect']}/api"
    if "s3" in services:
        env["AWS_ACCESS_KEY_ID"] = sec["S3_ACCESS_KEY_ID"]
        env["AWS_SECRET_ACCESS_KEY"] = sec["S3_SECRET_ACCESS_KEY"]
        env["AWS_DEFAULT_REGION"] = "us-east-1"
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_url
        env["GLCF_S3_ENDPOINT_URL"] = s3_url
        env["GLCF_S3_BUCKET"] = BUCKET
    return env


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_VARS)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _health_url(name: str, ports: dict[str, int]) -> str | None:
    return {
        "s3": f"http://127.0.0.1:{ports['s3']}/",
        "mlflow": f"http://127.0.0.1:{ports['mlflow']}/health",
        "prefect": f"http://127.0.0.1:{ports['prefect']}/api/health",
    }.get(name)


def _healthy(name: str, state: Path, ports: dict[str, int], sec: dict[str, str]) -> bool:
    if name == "postgres":
        return postgres.ready(state, ports["postgres"], sec["PG_SUPERUSER_PASSWORD"])
    url = _health_url(name, ports)
    return bool(url) and http_ok(url)


def _pid(name: str, state: Path) -> int | None:
    if name == "postgres":
        return postgres.pid(state)
    return read_pid(_paths(state)["pids"] / f"{name}.pid")


def _start_process(name: str, state: Path, conf: dict, sec: dict[str, str]) -> int:
    ports, paths = conf["ports"], _paths(state)
    log, pid_file = paths["logs"] / f"{name}.log", paths["pids"] / f"{name}.pid"
    s3_url = f"http://127.0.0.1:{ports['s3']}"
    if name == "s3":
        cmd = s3_command(conf["s3_kind"], ports["s3"], state, BIN)
        env = _server_env({})
    elif name == "prefect":
        home = state / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(ports["prefect"])]
        cmd += [] if conf.get("prefect_ui", True) else ["--no-ui"]
        env = _server_env({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    elif name == "mlflow":
        ini = state / "mlflow" / "basic_auth.ini"
        pg = f"postgresql+psycopg2://{PG_ROLE}@127.0.0.1:{ports['postgres']}"
        _write_private(
            ini,
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = {pg}/mlflow_auth\nadmin_username = {MLFLOW_ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        )
        allowed = f"127.0.0.1:{ports['mlflow']},localhost:{ports['mlflow']}"
        cmd = [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"{pg}/mlflow",
            "--artifacts-destination", f"s3://{BUCKET}/mlflow",
            "--host", "127.0.0.1", "--port", str(ports["mlflow"]),
            "--workers", str(conf.get("mlflow_workers", 1)),
            "--app-name", "basic-auth",
            "--allowed-hosts", allowed,
        ]  # fmt: skip
        env = _server_env(
            {
                # The database password goes through libpq's PGPASSWORD, never into the URI (argv, logs).
                "PGPASSWORD": sec["PG_PASSWORD"],
                "MLFLOW_S3_ENDPOINT_URL": s3_url,
                "AWS_ACCESS_KEY_ID": sec["S3_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": sec["S3_SECRET_ACCESS_KEY"],
                "AWS_DEFAULT_REGION": "us-east-1",
                "MLFLOW_FLASK_SERVER_SECRET_KEY": sec["MLFLOW_FLASK_SERVER_SECRET_KEY"],
                "MLFLOW_AUTH_CONFIG_PATH": str(ini),
                "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_ADMIN,
                "MLFLOW_AUTH_ADMIN_PASSWORD": sec["MLFLOW_ADMIN_PASSWORD"],
                # MLflow's job runner (GenAI jobs, ~8 huey processes, ~1.5 GiB) is unused by the GLCF pipeline.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
        )
    else:
        msg = f"unknown service {name!r}"
        raise ValueError(msg)
    return spawn(cmd, log, pid_file, env, cwd=state)


def _selected(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        msg = f"unknown service(s) {unknown}: choose from {', '.join(SERVICES)}"
        raise ValueError(msg)
    if "mlflow" in names:  # MLflow needs its database and its artifact store
        names += [n for n in ("postgres", "s3") if n not in names]
    return [n for n in SERVICES if n in names]


def up(args: argparse.Namespace) -> int:
    """Start every selected service that is not running yet and wait until all are healthy."""
    state: Path = args.state_dir
    state.mkdir(parents=True, exist_ok=True)
    paths = _paths(state)
    old = _load_json(paths["json"])
    try:
        wanted = _selected(args.services)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    running = [n for n in SERVICES if pid_alive(_pid(n, state))]
    conf = {
        "s3_kind": old.get("s3_kind", args.s3) if "s3" in running else args.s3,
        "services": sorted(set(wanted) | set(running), key=SERVICES.index),
        "mlflow_workers": args.mlflow_workers,
        "prefect_ui": not args.no_prefect_ui,
        "ports": {},
        "startup_s": old.get("startup_s", {}),
    }
    for name in SERVICES:
        port = old["ports"][name] if name in running and old.get("ports") else getattr(args, f"{name}_port")
        if port == 0:
            port = free_port()
        elif name in wanted and name not in running and port_in_use(port):
            print(f"error: port {port} for {name} is already in use (choose another with --{name}-port)")
            return 2
        conf["ports"][name] = port
    sec = load_secrets(state, conf["s3_kind"])
    paths["json"].write_text(json.dumps(conf, indent=2))
    todo = [n for n in wanted if n not in running]
    started: dict[str, tuple[int, float]] = {}
    t0 = time.monotonic()
    try:
        # Prefect is the slowest and needs nothing else: start it first, then PostgreSQL and S3, then MLflow.
        for name in ("prefect", "postgres", "s3"):
            if name not in todo:
                continue
            t = time.monotonic()
            if name == "postgres":
                pid = postgres.start(state, conf["ports"]["postgres"], sec, PG_ROLE, timeout=args.timeout)
                conf["startup_s"]["postgres"] = round(time.monotonic() - t, 1)
            else:
                pid = _start_process(name, state, conf, sec)
            started[name] = (pid, t)
        if "s3" in started:
            _wait("s3", state, conf, sec, started, args.timeout)
        if "s3" in wanted:
            ensure_buckets(f"http://127.0.0.1:{conf['ports']['s3']}", sec, [BUCKET])
        if "mlflow" in todo:
            started["mlflow"] = (_start_process("mlflow", state, conf, sec), time.monotonic())
        for name in ("mlflow", "prefect"):
            if name in started:
                _wait(name, state, conf, sec, started, args.timeout)
    except (ServiceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("stopping what this command started", file=sys.stderr)
        for name in reversed(SERVICES):
            if name in started:
                _stop(name, state)
        return 1
    finally:
        paths["json"].write_text(json.dumps(conf, indent=2))
    env = client_env(conf, sec)
    _write_private(paths["client"], "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    _write_private(state / "client.json", json.dumps(env, indent=2))
    print(f"stack up in {time.monotonic() - t0:.1f} s (state: {state})")
    for name in conf["services"]:
        note = "already running" if name in running else f"ready in {conf['startup_s'].get(name, '?')} s"
        print(f"  {name:9s} 127.0.0.1:{conf['ports'][name]:<6d} {note}")
    print(f"client environment (with secrets): source {paths['client']}")
    return 0


def _wait(name: str, state: Path, conf: dict, sec: dict[str, str], started: dict, timeout: float) -> None:
    pid, t_start = started[name]
    log = _paths(state)["logs"] / f"{name}.log"
    wait_until(name, lambda: _healthy(name, state, conf["ports"], sec), timeout, pid, log)
    conf["startup_s"][name] = round(time.monotonic() - t_start, 1)


def _stop(name: str, state: Path, grace: float = 15.0) -> str:
    if name == "postgres":
        # PostgreSQL's documented fast shutdown is SIGINT to the postmaster (not its process group).
        result = stop_pid(postgres.pid(state), grace=grace, first=signal.SIGINT, group=False)
    else:
        result = stop_pid(_pid(name, state), grace=grace)
        (_paths(state)["pids"] / f"{name}.pid").unlink(missing_ok=True)
    return result


def down(args: argparse.Namespace) -> int:
    """Stop every service by PID, MLflow and Prefect first; idempotent."""
    for name in ("mlflow", "prefect", "s3", "postgres"):
        print(f"  {name:9s} {_stop(name, args.state_dir, args.grace)}")
    return 0


def status(args: argparse.Namespace) -> int:
    """Print each service's PID, port and health; exit 1 if any is not healthy."""
    state: Path = args.state_dir
    conf = _load_json(_paths(state)["json"])
    if not conf:
        print(f"no stack in {state}")
        return 1
    sec = load_secrets(state, conf["s3_kind"])
    all_ok = True
    for name in conf.get("services", SERVICES):
        pid = _pid(name, state)
        alive = pid_alive(pid)
        ok = alive and _healthy(name, state, conf["ports"], sec)
        all_ok &= ok
        word = "healthy" if ok else ("running, not healthy" if alive else "stopped")
        print(f"  {name:9s} 127.0.0.1:{conf['ports'][name]:<6d} pid {pid if alive else '-':<8} {word}")
        if alive and not ok:
            print(log_tail(_paths(state)["logs"] / f"{name}.log", 5))
    return 0 if all_ok else 1


def env_cmd(args: argparse.Namespace) -> int:
    """Print export lines for a client (``eval "$(stack.py env)"``)."""
    path = _paths(args.state_dir)["client"]
    if not path.exists():
        print(f"no client environment in {args.state_dir}: run `stack.py up` first", file=sys.stderr)
        return 1
    sys.stdout.write(path.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_state = Path(os.environ.get("GLCF_STACK_DIR", PROJECT / ".run" / "stack"))
    parser.add_argument("--state-dir", type=Path, default=default_state, help="default: $GLCF_STACK_DIR or .run/stack")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the stack")
    p_up.add_argument("--s3", choices=S3_KINDS, default="s3rver", help="S3 server (default: s3rver, on disk)")
    for name, port in DEFAULT_PORTS.items():
        p_up.add_argument(f"--{name}-port", type=int, default=port, help=f"default {port}; 0 = a free port")
    p_up.add_argument("--services", default=",".join(SERVICES), help="comma list (mlflow implies postgres,s3)")
    p_up.add_argument("--mlflow-workers", type=int, default=1)
    p_up.add_argument("--no-prefect-ui", action="store_true", help="start the Prefect API without its UI")
    p_up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each service")
    p_down = sub.add_parser("down", help="stop the stack (by PID)")
    p_down.add_argument("--grace", type=float, default=15.0, help="seconds between TERM and KILL")
    sub.add_parser("status", help="show the services")
    sub.add_parser("env", help="print export lines for clients (contains secrets)")
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    return {"up": up, "down": down, "status": status, "env": env_cmd}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
