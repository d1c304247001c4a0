"""Process helpers of the local stack: start detached, PID files, readiness polling, stop by PID.

Plain standard library, so that ``stack.py`` runs with any Python that has the project's tools on its ``bin/``.
Every process starts in its own session (process group), so stopping it also stops the workers it forked
(uvicorn/gunicorn workers of MLflow, Prefect's services) without matching anything by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ServiceError",
    "free_port",
    "http_ok",
    "log_tail",
    "pid_alive",
    "read_pid",
    "spawn",
    "stop_pid",
    "wait_until",
]


class ServiceError(RuntimeError):
    """A service failed to start or to become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn(cmd: Sequence[str], log_file: Path, pid_file: Path, env: Mapping[str, str], cwd: Path | None = None) -> int:
    """Start ``cmd`` detached (new session), output appended to ``log_file``, PID written to ``pid_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def read_pid(pid_file: Path) -> int | None:
    """The PID in a PID file (first line), or None if the file is missing or malformed."""
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _signal(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                os.kill(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pid(pid: int | None, grace: float = 15.0, first: int = signal.SIGTERM, group: bool = True) -> str:
    """Stop a process by PID: ``first`` signal (TERM), then KILL after ``grace`` seconds.

    Args:
        pid: the process (and, with ``group``, its process group, as started by :func:`spawn`).
        grace: seconds to wait after the first signal.
        first: the first signal (PostgreSQL's fast shutdown is SIGINT).
        group: signal the whole process group whose leader is ``pid``.

    Returns:
        ``"not running"``, ``"stopped"`` or ``"killed"``.
    """
    if not pid_alive(pid):
        return "not running"
    assert pid is not None
    _signal(pid, first, group)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return "stopped"
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL, group)
    for _ in range(50):
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    return "killed"


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET on ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(log_file: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (or a note that there is none)."""
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {log_file})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    name: str, ready: Callable[[], bool], timeout: float, pid: int | None, log_file: Path, interval: float = 0.25
) -> float:
    """Poll ``ready()`` until true; fail early if ``pid`` died, or after ``timeout`` s, showing the log tail.

    Returns:
        Seconds it took.

    Raises:
        ServiceError: the process exited or the timeout passed.
    """
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        if pid is not None and not pid_alive(pid):
            msg = f"{name} exited during start-up (pid {pid}); last lines of {log_file}:\n{log_tail(log_file)}"
            raise ServiceError(msg)
        if time.monotonic() - start > timeout:
            msg = f"{name} not ready after {timeout:.0f} s; last lines of {log_file}:\n{log_tail(log_file)}"
            raise ServiceError(msg)
        time.sleep(interval)
