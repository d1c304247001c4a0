"""Prefect defaults that must be set before ``prefect`` is imported (measured on 2-core machines).

Local mode starts a temporary server whose first start takes about 40 s on a fresh database, over
Prefect's 20 s default. Values already in the environment win.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "glcf,pipelines",
}


def apply_prefect_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
