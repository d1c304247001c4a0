"""``glcf stage NAME CATEGORY``: one pipeline stage for one category (what ``dvc.yaml`` runs)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer


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
    try:
        result = run_stage(name, category, params, progress=not quiet and sys.stderr.isatty())
    except (ValueError, FileNotFoundError) as exc:  # bad params, data layout, missing inputs: no traceback
        log = logging.getLogger("glcf")
        log.debug("traceback", exc_info=True)
        log.error("stage %s@%s failed: %s", name, category, exc)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result_dict(result), indent=2, default=str))
