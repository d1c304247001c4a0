"""JSON helpers for metric reports: FPR-limit keys and strict-JSON values (NaN becomes null)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_ready", "limit_key"]


def limit_key(limit: float) -> str:
    """JSON key of an FPR limit: ``0.05`` -> ``"0.05"``, ``1.0`` -> ``"1.0"``."""
    return repr(float(limit))


def json_ready(value: Any) -> Any:
    """Nested dicts/lists with numpy scalars turned into Python numbers and NaN/inf into ``None``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
