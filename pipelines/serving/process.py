"""The scoring server as a child process of ``glcf serve`` that never outlives it.

* The server (``mlflow models serve``, which runs ``uvicorn`` as its own child) starts in its own
  process group; SIGINT, SIGTERM and SIGHUP of ``glcf serve`` go to that whole group.
* When ``glcf serve`` dies without a chance to forward anything (``kill -9``), Linux sends the
  server SIGTERM (``PR_SET_PDEATHSIG``); MLflow sets the same death signal on its ``uvicorn``
  child, so the chain unwinds and the port is freed.
* A taken port fails at once, before anything is loaded; the "serving" line comes only once the
  server answers ``/ping``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class PortUnavailableError(OSError):
    """The address to serve on cannot be bound (taken, or not allowed)."""


def check_bindable(host: str, port: int) -> None:
    """Bind and release ``host:port`` as the server will (``SO_REUSEADDR``, like uvicorn).

    Raises:
        PortUnavailableError: one line naming the address and the reason.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        msg = f"cannot serve on {host}:{port}: unknown address ({exc.strerror})"
        raise PortUnavailableError(msg) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            why = "already in use (another server? pick --port)" if exc.errno == errno.EADDRINUSE else exc.strerror
            msg = f"cannot serve on {host}:{port}: {why}"
            raise PortUnavailableError(msg) from None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies (Linux only).

    ``prctl`` is looked up here, in the parent: the child only calls it between ``fork`` and ``exec``.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the death signal was set
            os._exit(1)

    return preexec


def ping_url(host: str, port: int) -> str:
    """The server's health check, reached over loopback when it binds every address."""
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{reach}]:{port}/ping" if ":" in reach else f"http://{reach}:{port}/ping"


def answers(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def run_server(cmd: list[str], env: dict[str, str], ping: str, on_ready: Callable[[], None]) -> int:
    """Run the server until it exits; call ``on_ready`` once ``ping`` answers; returns its exit code."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent())

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while proc.poll() is None:
            if answers(ping):
                on_ready()
                break
            time.sleep(0.25)
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
