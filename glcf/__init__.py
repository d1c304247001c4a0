"""GLCF: Global-Local Correspondence with a semantic bottleneck for logical anomaly detection.

Yao et al., "Learning Global-Local Correspondence with Semantic Bottleneck for Logical Anomaly
Detection", arXiv 2303.05768. The public API is loaded lazily (PEP 562): ``import glcf`` and
``import glcf.config`` do not import torch or timm, so the CLI starts fast.

Example:
    >>> import glcf
    >>> model = glcf.build_glcf(glcf.preset("tiny"))
    >>> loss_fn = glcf.GLCFLoss(model.config.loss)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AnomalyScorer",
    "GLCFConfig",
    "GLCFFeatures",
    "GLCFLoss",
    "GLCFModel",
    "NormStats",
    "WeightsUnavailableError",
    "backbone_normalization",
    "build_glcf",
    "config_from_dict",
    "config_to_dict",
    "fit",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
]

_LAZY = {
    "GLCFConfig": "glcf.config",
    "preset": "glcf.presets",
    "config_from_dict": "glcf.config",
    "config_to_dict": "glcf.config",
    "GLCFFeatures": "glcf.features",
    "GLCFModel": "glcf.model",
    "build_glcf": "glcf.model",
    "GLCFLoss": "glcf.loss",
    "WeightsUnavailableError": "glcf.weights",
    "backbone_normalization": "glcf.weights",
    "AnomalyScorer": "glcf.scoring",
    "NormStats": "glcf.scoring",
    "fit": "glcf.engine",
    "save_checkpoint": "glcf.checkpoint",
    "load_checkpoint": "glcf.checkpoint",
}

if TYPE_CHECKING:  # static analysers see the real names
    from glcf.checkpoint import load_checkpoint, save_checkpoint
    from glcf.config import GLCFConfig, config_from_dict, config_to_dict
    from glcf.engine import fit
    from glcf.features import GLCFFeatures
    from glcf.loss import GLCFLoss
    from glcf.model import GLCFModel, build_glcf
    from glcf.presets import preset
    from glcf.scoring import AnomalyScorer, NormStats
    from glcf.weights import WeightsUnavailableError, backbone_normalization


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'glcf' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
