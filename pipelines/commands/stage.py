"""``glcf stage NAME CATEGORY``: one pipeline stage for one category (what ``dvc.yaml`` runs)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipelines.stages import STAGES


def expected_failure(exc: BaseException) -> bool:
    """Errors of input or of a service (reported in one line) rather than bugs (traceback).

    MLflow's and botocore's classes are matched only when loaded: importing them here would cost
    every stage seconds of start-up.
    """
    kinds: list[type] = [ValueError, FileNotFoundError, ConnectionError]
    for module, name in (("mlflow.exceptions", "MlflowException"), ("botocore.exceptions", "BotoCoreError")):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    return isinstance(exc, tuple(kinds))


#: MLflow's warnings that do not apply to the stages (kept in the stage's log file, off the console):
#: the served model declares its signature, and its requirements are pinned (no pip in a uv environment).
MLFLOW_NOISE = ("Add type hints to the `predict` method", "Failed to resolve installed pip version")


def quiet_libraries() -> None:
    """MLflow logs through the stage's handlers (warnings only, no colours) and shows no progress bars.

    Set before MLflow is imported: it reads these when it configures its loggers.
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run at ..." line
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def stage(
    name: Annotated[str, typer.Argument(help=" | ".join(STAGES))],
    category: Annotated[str, typer.Argument(help="a category listed in data.categories")],
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the stage's result as JSON on stdout")] = False,
) -> None:
    """Run one stage of the pipeline for one category: a line or two on the console.

    Each INFO line of every module goes to ``.run/logs/<name>@<category>.log`` beside the params file.
    """
    from pipelines.logs import setup_stage_logging
    from pipelines.stages.runner import result_dict, run_stage

    setup_stage_logging(name, params.resolve().parent / ".run" / "logs" / f"{name}@{category}.log", MLFLOW_NOISE)
    quiet_libraries()
    try:
        result = run_stage(name, category, params, progress=not quiet and sys.stderr.isatty())
    except Exception as exc:
        if not expected_failure(exc):
            raise
        # bad params, data layout, missing inputs, an unreachable tracking server or artifact store:
        # one clear line (GLCF_LOG_LEVEL=DEBUG adds the traceback)
        log = logging.getLogger("glcf")
        log.debug("traceback", exc_info=True)
        log.error("stage %s@%s failed: %s", name, category, exc)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result_dict(result), indent=2, default=str))
