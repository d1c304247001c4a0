"""glcf/ never imports the pipeline stack; ``import glcf`` stays light (lazy public API)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("prefect", "mlflow", "dvc", "boto3", "typer", "pipelines")

CODE = """
import json, sys
import glcf, glcf.config
light = sorted(m for m in ("torch", "timm") if m in sys.modules)
api = glcf.__all__
import glcf.model, glcf.training.loss, glcf.model.info
heavy_ok = "torch" in sys.modules and "timm" in sys.modules
forbidden = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print(json.dumps({"light": light, "forbidden": forbidden, "heavy_ok": heavy_ok, "api": api}))
"""


def test_import_boundary() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE % (FORBIDDEN,)], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["light"] == []  # import glcf / glcf.config: no torch, no timm
    assert result["heavy_ok"]  # the check below really ran after the model was imported
    assert result["forbidden"] == []


def test_public_api_resolves_lazily() -> None:
    import glcf

    for name in (
        "GLCFConfig",
        "preset",
        "config_from_dict",
        "config_to_dict",
        "GLCFFeatures",
        "GLCFModel",
        "build_glcf",
        "GLCFLoss",
        "WeightsUnavailableError",
        "backbone_normalization",
    ):
        assert name in glcf.__all__
        assert getattr(glcf, name).__name__ == name
    assert glcf.GLCFModel is __import__("glcf.model", fromlist=["GLCFModel"]).GLCFModel
    with pytest.raises(AttributeError, match="no_such_name"):
        glcf.no_such_name  # noqa: B018
