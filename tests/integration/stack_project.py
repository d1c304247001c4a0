"""Tiny projects wired to the local team stack, for the schedule, scale-out and reliability tests.

:func:`stack_project` builds a copy of the repository with the tiny configuration of
``pipeline_project.TINY`` (its own registered-model and experiment prefix, so that tests sharing the
session's MLflow server never see each other's models), a DVC remote on the stack's S3 store (or on
any endpoint, e.g. a :class:`TcpProxy` in front of it) and the category data generated and pushed.
Its environment is the stack's client environment with the test credentials of ``conftest`` as S3
keys (moto accepts any pair), so the tests can grep for them.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from conftest import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from pipeline_project import TINY, TinyProject, build_project, clean_env
from servers import LocalStack, free_port


def stack_project(
    dest: Path,
    stack: LocalStack,
    prefix: str,
    *,
    categories: Sequence[str] = ("pushpins",),
    s3_endpoint: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TinyProject:
    """A committed tiny project on the stack with its data pushed to a DVC remote.

    Args:
        dest: an empty folder.
        stack: the session's local stack.
        prefix: registered models are ``<prefix>-<category>``, experiments ``<prefix>/synthetic-loco``.
        categories: the categories to generate and push.
        s3_endpoint: the DVC remote's endpoint (default: the stack's S3 server).
        overrides: more dotted ``params.yaml`` keys.
    """
    params = {
        **TINY,
        "data.categories": list(categories),
        "register.model_name_prefix": prefix,
        "register.experiment_prefix": prefix,
        **(overrides or {}),
    }
    project = build_project(dest, params)
    project.env = clean_env(dest) | stack_env(stack)
    remote = f"s3://{stack.env['GLCF_S3_BUCKET']}/dvc-{prefix}-{uuid.uuid4().hex[:8]}"
    project.run(
        "glcf", "remote", "configure", "--name", "team", "--url", remote,
        "--endpoint-url", s3_endpoint or stack.s3_endpoint, "--default",
    )  # fmt: skip
    for category in categories:
        project.run("dvc", "repro", "--single-item", f"data@{category}")
    project.run("dvc", "push", *[f"data@{c}" for c in categories])
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "data and DVC remote")
    return project


def stack_env(stack: LocalStack) -> dict[str, str]:
    """The stack's client variables, with the test S3 keys and Prefect's API logging quiet outside runs."""
    return stack.env | {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }


def secrets_of(project: TinyProject) -> dict[str, str]:
    """Every credential the project's tools hold: the test S3 keys and the MLflow password."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
        "MLFLOW_TRACKING_PASSWORD": project.env["MLFLOW_TRACKING_PASSWORD"],
    }


@contextmanager
def stack_mlflow(project: TinyProject) -> Iterator[Any]:
    """An MLflow client of the stack's tracking server with the project's credentials (env restored after)."""
    import os

    from mlflow import MlflowClient

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: project.env[k] for k in keys})
    try:
        yield MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def registry_state(project: TinyProject, name: str) -> tuple[list[str], dict[str, str], dict[str, dict[str, str]]]:
    """Versions, aliases and version tags of a registered model on the stack (empty when it does not exist)."""
    with stack_mlflow(project) as client:
        found = client.search_model_versions(f"name = '{name}'")
        if not found:
            return [], {}, {}
        versions = sorted((str(mv.version) for mv in found), key=int)
        aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
        return versions, aliases, {str(mv.version): dict(mv.tags) for mv in found}


def stage_result(stdout: str) -> dict[str, Any]:
    """The JSON result ``glcf stage`` prints (MLflow prints its run links to stdout before it)."""
    import json

    start = 0 if stdout.startswith("{") else stdout.index("\n{") + 1
    result, _ = json.JSONDecoder().raw_decode(stdout[start:])
    return result


def drop_local_data(project: TinyProject, category: str) -> None:
    """Remove the category's data and the DVC cache: only ``dvc pull`` can bring them back."""
    import shutil

    shutil.rmtree(project.root / "data" / "raw" / category)
    shutil.rmtree(project.root / ".dvc" / "cache", ignore_errors=True)


def prefect_client(api: str) -> Any:
    """A synchronous Prefect client of ``api`` (use as a context manager)."""
    from pipelines.prefect_env import apply_prefect_defaults

    apply_prefect_defaults()
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api)


class TcpProxy:
    """A TCP forwarder on a loopback port: ``stop()`` makes the service behind it unreachable, ``start()`` heals.

    The S3 server (in memory) keeps its objects while the proxy is down, as a real store does through a
    network outage. Connections are refused while it is stopped.
    """

    def __init__(self, target: str, port: int | None = None) -> None:
        host, _, target_port = target.removeprefix("http://").partition(":")
        self.target = (host, int(target_port.rstrip("/")))
        self.port = port or free_port()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed by stop()
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@contextmanager
def tcp_proxy(target: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
