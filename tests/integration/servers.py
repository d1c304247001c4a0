"""Server-process helpers of the integration tests: a lone ``moto_server`` and the local stack of infra/local.

The stack is driven through its command line (``infra/local/stack.py up|status|down``) exactly as a developer runs
it, so the tests exercise the real scripts; nothing here imports from ``infra/``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
STACK = PROJECT / "infra" / "local" / "stack.py"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Poll ``url`` until it answers (any HTTP status); returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - start
        except urllib.error.HTTPError:
            return time.monotonic() - start
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def moto_server() -> Iterator[str]:
    """Run ``moto_server`` on a free loopback port; yields its endpoint URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, timeout=60, proc=proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class LocalStack:
    """A running local stack (infra/local/stack.py) and what a client needs to use it."""

    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    startup_s: dict[str, float]
    up_seconds: float
    up_output: str = field(repr=False, default="")

    @property
    def mlflow_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def prefect_api_url(self) -> str:
        return self.env["PREFECT_API_URL"]

    @property
    def s3_endpoint(self) -> str:
        return self.env["GLCF_S3_ENDPOINT_URL"]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``stack.py --state-dir <state> <args>``."""
        return run_stack("--state-dir", str(self.state_dir), *args, timeout=timeout)


def run_stack(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the stack script with this interpreter; output captured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PREFECT_", "GLCF_"))}
    return subprocess.run(
        [sys.executable, str(STACK), *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def make_state_dir() -> Path:
    """A fresh state dir the ``postgres`` user can reach when we run as root (pytest's tmp dirs are 0700)."""
    state = Path(tempfile.mkdtemp(prefix="glcf-stack-"))
    state.chmod(0o755)
    return state


def start_local_stack(state_dir: Path, *extra: str, timeout: float = 300) -> LocalStack:
    """``stack.py up`` with moto, free ports and no Prefect UI; raises with the script's output on failure."""
    ports = [f"--{name}-port=0" for name in ("postgres", "s3", "mlflow", "prefect")]
    t0 = time.monotonic()
    args = ["--state-dir", str(state_dir), "up", "--s3", "moto", "--no-prefect-ui", *ports, *extra]
    proc = run_stack(*args, timeout=timeout)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        run_stack("--state-dir", str(state_dir), "down")
        raise RuntimeError(f"stack.py up failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    conf = json.loads((state_dir / "stack.json").read_text())
    env = json.loads((state_dir / "client.json").read_text())
    return LocalStack(state_dir, env, conf["ports"], conf["startup_s"], elapsed, proc.stdout + proc.stderr)


def stop_local_stack(stack: LocalStack, remove: bool = True) -> None:
    """``stack.py down``, then remove the state dir."""
    stack.run("down")
    if remove:
        shutil.rmtree(stack.state_dir, ignore_errors=True)
