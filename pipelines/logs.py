"""Logging set-up for the command-line entry points (never at import time)."""

from __future__ import annotations

import logging
import os


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
