"""``glcf stage NAME CATEGORY``: one pipeline stage for one category (what ``dvc.yaml`` runs)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer


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


def stage(
    name: Annotated[str, typer.Argument(help="data | prepare | train | calibrate | evaluate | register | promote")],
    category: Annotated[str, typer.Argument(help="a category listed in data.categories")],
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Run one stage of the pipeline for one category; prints its result as JSON."""
    from pipelines.logs import setup_logging
    from pipelines.stages.runner import result_dict, run_stage

    setup_logging()
    # stdout carries the stage's JSON result only: no "View run at ..." line from MLflow
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
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
    typer.echo(json.dumps(result_dict(result), indent=2, default=str))
