"""Logging set-up for the command-line entry points (never at import time)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path


def setup_logging(level: str | None = None) -> None:
    """Log ``glcf`` and ``pipelines`` at INFO (``GLCF_LOG_LEVEL`` overrides) to stderr, once."""
    level = (level or os.environ.get("GLCF_LOG_LEVEL", "INFO")).upper()
    root = logging.getLogger()
    if not any(getattr(h, "_glcf", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._glcf = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for name in ("glcf", "pipelines"):
        logging.getLogger(name).setLevel(level)
    root.setLevel(logging.WARNING)


def setup_stage_logging(stage: str, log_file: Path, hide: Sequence[str] = ()) -> None:
    """The console of one pipeline stage: its own lines (``pipelines.stages.<stage>``) and the warnings.

    Everything from INFO on (``glcf``, ``pipelines``) and every warning, Python's included, also
    goes to ``log_file`` (rewritten at each run). Warnings holding one of the ``hide`` phrases
    go to the file only. With ``GLCF_LOG_LEVEL`` other than INFO, the console shows everything at
    that level.
    """
    level = os.environ.get("GLCF_LOG_LEVEL", "INFO").upper()
    if level != "INFO":
        setup_logging(level)
        return
    setup_logging("INFO")
    logging.captureWarnings(True)  # Python warnings as log records of "py.warnings": filtered like the rest
    own = f"pipelines.stages.{stage}"

    def console(record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return record.name == own
        return not any(phrase in record.getMessage() for phrase in hide)

    for handler in logging.getLogger().handlers:
        if getattr(handler, "_glcf", False):
            handler.addFilter(console)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    details = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    details.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logging.getLogger().addHandler(details)
