"""Private PostgreSQL cluster of the local stack.

``initdb`` into ``<state>/postgres/data`` once, then ``pg_ctl -w start`` on 127.0.0.1 only (no Unix socket), with
SCRAM passwords on TCP. The binaries come from ``GLCF_PG_BINDIR`` or the newest ``/usr/lib/postgresql/<ver>/bin``
(Debian's layout), else ``initdb`` on PATH. As root the cluster belongs to the ``postgres`` user, because initdb
refuses to run as root. Creates the role ``glcf`` and the databases ``mlflow`` (tracking) and ``mlflow_auth``
(MLflow's user store).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from procs import ServiceError, log_tail, pid_alive, read_pid

DATABASES = ("mlflow", "mlflow_auth")


def bindir() -> Path:
    """Directory holding ``initdb``/``pg_ctl``: GLCF_PG_BINDIR, the newest Debian version, or PATH."""
    if os.environ.get("GLCF_PG_BINDIR"):
        return Path(os.environ["GLCF_PG_BINDIR"])
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    if candidates:
        return max(candidates, key=lambda p: int(p.parts[-3])).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    msg = "PostgreSQL server binaries not found: install them (Debian: postgresql) or set GLCF_PG_BINDIR"
    raise ServiceError(msg)


def _dirs(state: Path) -> tuple[Path, Path, Path]:
    base = state / "postgres"
    return base, base / "data", state / "logs" / "postgres.log"


def pid(state: Path) -> int | None:
    """The postmaster's PID from its ``postmaster.pid``."""
    return read_pid(_dirs(state)[1] / "postmaster.pid")


def _owner() -> str | None:
    """The user that owns the cluster: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        msg = "running as root needs a 'postgres' system user: initdb refuses to run as root"
        raise ServiceError(msg) from None
    return "postgres"


def _run(cmd: list[str], user: str | None, log: Path, timeout: float) -> None:
    proc = subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=timeout, check=False, cwd="/")
    with log.open("a") as fh:
        fh.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        msg = f"{Path(cmd[0]).name} failed (exit {proc.returncode}); last lines of {log}:\n{log_tail(log)}"
        raise ServiceError(msg)


def _chown(path: Path, user: str | None) -> None:
    if user:
        info = pwd.getpwnam(user)
        os.chown(path, info.pw_uid, info.pw_gid)


def _initdb(state: Path, superuser_password: str, user: str | None, log: Path) -> None:
    base, data, _ = _dirs(state)
    base.mkdir(parents=True, exist_ok=True)
    _chown(base, user)
    if user:  # the postgres user must be able to reach the state dir
        check = subprocess.run(["test", "-w", str(base)], user=user, check=False)
        if check.returncode != 0:
            msg = f"user {user!r} cannot write {base}: use a --state-dir whose parents are world-executable"
            raise ServiceError(msg)
    fd, pwfile = tempfile.mkstemp(dir=base, prefix=".pw")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(superuser_password + "\n")
        _chown(Path(pwfile), user)
        cmd = [str(bindir() / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}"]
        cmd += ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
        _run(cmd, user, log, timeout=120)
    finally:
        Path(pwfile).unlink(missing_ok=True)
    with (data / "postgresql.conf").open("a") as fh:
        fh.write("\ninclude_if_exists = 'glcf_stack.conf'\n")


def start(state: Path, port: int, sec: dict[str, str], role: str, timeout: float = 60.0) -> int:
    """Initialise (first time), start and provision the cluster; returns the postmaster PID."""
    _, data, log = _dirs(state)
    user = _owner()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    _chown(log, user)
    if not (data / "PG_VERSION").exists():
        _initdb(state, sec["PG_SUPERUSER_PASSWORD"], user, log)
    conf = data / "glcf_stack.conf"
    conf.write_text(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n")
    _chown(conf, user)
    pg_ctl = [str(bindir() / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)), "start"]
    _run(pg_ctl, user, log, timeout + 10)
    postmaster = pid(state)
    if not pid_alive(postmaster):
        msg = f"PostgreSQL did not stay up; last lines of {log}:\n{log_tail(log)}"
        raise ServiceError(msg)
    _provision(port, sec, role)
    assert postmaster is not None
    return postmaster


def _connect(port: int, password: str, dbname: str = "postgres"):
    import psycopg2

    return psycopg2.connect(
        host="127.0.0.1", port=port, user="postgres", password=password, dbname=dbname, connect_timeout=3
    )


def _provision(port: int, sec: dict[str, str], role: str) -> None:
    """Create the login role and the databases if missing (idempotent)."""
    conn = _connect(port, sec["PG_SUPERUSER_PASSWORD"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(f"{verb} ROLE {role} LOGIN PASSWORD %s", (sec["PG_PASSWORD"],))
            for db in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(f"CREATE DATABASE {db} OWNER {role}")
    finally:
        conn.close()


def ready(state: Path, port: int, superuser_password: str) -> bool:
    """Whether the cluster accepts an authenticated connection."""
    if not pid_alive(pid(state)):
        return False
    try:
        _connect(port, superuser_password).close()
    except Exception:  # any failure (refused, auth not ready, starting up) means "not ready"
        return False
    return True
