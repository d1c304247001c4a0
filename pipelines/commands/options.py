"""Option values shared by the commands: the ``--params`` file, comma-separated lists."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pipelines.params import PipelineParams


def load_params_or_exit(path: Path, command: str) -> PipelineParams:
    """``load_params(path)``; a bad or missing file logs ``<command>: <reason>`` and exits with 2."""
    from pipelines.logs import setup_logging
    from pipelines.params import ParamsError, load_params

    setup_logging()
    try:
        return load_params(path)
    except ParamsError as exc:
        logging.getLogger("glcf").error("%s: %s", command, exc)
        raise typer.Exit(2) from None


def comma_list(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None or empty -> None (the command's default)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
