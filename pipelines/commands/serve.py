"""``glcf serve``: the registered model of a category behind MLflow's scoring server.

Runs ``mlflow models serve -m models:/<prefix>-<category>@<alias> --env-manager local`` against the
tracking store the pipeline uses (``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the project), with
this environment's ``bin/`` first on PATH (the server starts ``uvicorn`` from there). The server never
outlives ``glcf serve`` (``pipelines/serving/process.py``). The request and answer format is described
in ``pipelines/serving/model_code.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer


def serve_command(model_uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line (the ``mlflow`` script of this environment)."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    exe = str(mlflow_bin) if mlflow_bin.exists() else "mlflow"
    return [
        exe, "models", "serve", "-m", model_uri, "--env-manager", "local",
        "-h", host, "-p", str(port), "-w", str(workers),
    ]  # fmt: skip


def server_env(workers: int = 1) -> dict[str, str]:
    """This environment with its ``bin/`` first on PATH (else ``uvicorn: not found``) and ``GLCF_THREADS``.

    Each of the ``workers`` server processes scores with its part of torch's threads, unless
    ``GLCF_THREADS`` says otherwise.
    """
    from pipelines.settings import THREADS_VARIABLE, torch_threads_setting

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env[THREADS_VARIABLE] = str(torch_threads_setting(share=workers))
    return env


def _check_choices(log: logging.Logger, backend: str, category: str, alias: str) -> None:
    """Exit with code 2 (after one error line) on an unknown backend or a category / alias that is not a simple name."""
    from pipelines.params import CATEGORY_RE

    if backend not in ("pyfunc", "onnx"):
        log.error("serve: --backend must be pyfunc or onnx, got %r", backend)
        raise typer.Exit(2)
    for what, value in (("--category", category), ("--alias", alias)):
        if not CATEGORY_RE.match(value):
            log.error("serve: %s must be a simple name (letters, digits, _ - .), got %r", what, value)
            raise typer.Exit(2)


def serve(
    category: Annotated[str, typer.Option("--category", "-c", help="the category whose model to serve")],
    alias: Annotated[str, typer.Option(help="registry alias to serve")] = "champion",
    host: Annotated[str | None, typer.Option(help="bind address (default serve.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default serve.port)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="server worker processes")] = 1,
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    backend: Annotated[
        str, typer.Option(help="pyfunc (MLflow's server, torch) or onnx (the version's ONNX export, onnxruntime)")
    ] = "pyfunc",
) -> None:
    """Serve models:/<prefix>-<category>@<alias> on /invocations (base64 PNG/JPEG images in, scores out)."""
    from pipelines.commands.options import load_params_or_exit

    loaded = load_params_or_exit(params, "serve")
    log = logging.getLogger("glcf")
    _check_choices(log, backend, category, alias)
    from pipelines.serving.process import PortUnavailableError, check_bindable, ping_url, run_server

    bind = host or loaded.serve.host
    bind_port = port if port is not None else loaded.serve.port
    try:
        check_bindable(bind, bind_port)  # before the registry and the model: a taken port fails at once
    except PortUnavailableError as exc:
        log.error("serve: %s", exc)
        raise typer.Exit(2) from None
    from pipelines import registry, tracking

    root = loaded.root
    tracking.configure_tracking(root)
    name = loaded.model_name(category)
    version = registry.by_alias(name, alias)
    if version is None:
        log.error(
            "serve: registered model %r has no alias @%s in the tracking store (MLFLOW_TRACKING_URI, else "
            "%s); run the pipeline for %r first (glcf flow or dvc repro), or pick another --alias",
            name, alias, root / tracking.DEFAULT_DB, category,
        )  # fmt: skip
        raise typer.Exit(2)
    uri = f"models:/{name}@{alias}"
    log.info("loading %s (version %s) ...", uri, version.version)

    def ready() -> None:
        log.info("serving %s (version %s) on http://%s:%d/invocations", uri, version.version, bind, bind_port)

    cmd = serve_command(uri, bind, bind_port, workers)
    if backend == "onnx":
        from pipelines.serving.onnx_server import onnx_serve_command

        cmd = onnx_serve_command(loaded, name, version.version, category, bind, bind_port)
    code = run_server(cmd, server_env(workers), ping_url(bind, bind_port), ready)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        log.error("serve: the scoring server exited with code %d (its output is above)", code)
        raise typer.Exit(code if code > 0 else 1)
