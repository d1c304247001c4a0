"""MLflow pyfunc of a GLCF category model ("models from code": MLflow copies this file into the model).

Request (``POST /invocations``, JSON): one row per image, column ``image`` holding the PNG or JPEG
bytes base64-encoded (any size, RGB or grayscale), and optional params::

    {"dataframe_split": {"columns": ["image"], "data": [["iVBORw0..."]]},
     "params": {"return_map": true, "map_size": "original"}}

Answer, per image: ``score``, ``is_anomaly`` (at the calibrated threshold), ``threshold``,
``local_score``, ``global_score``, ``model_version`` and, on request, ``anomaly_map`` (rows of
floats at the image's size, or the model's with ``map_size: model``). A malformed request (bad
base64, not an image, empty batch, too many images, an image over the size limits) raises an
``MlflowException`` with ``INVALID_PARAMETER_VALUE``: the scoring server answers HTTP 400 with the
message and keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

logger = logging.getLogger("glcf.serving")

#: torch's intra-op threads of each server process (``pipelines.settings.THREADS_VARIABLE``; this file runs
#: without the pipelines package, so it names the variable itself and a unit test checks the two agree).
THREADS_VARIABLE = "GLCF_THREADS"
DEFAULT_LIMITS = {"max_image_bytes": 20_000_000, "max_image_pixels": 40_000_000, "max_batch": 32}


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class GLCFServedModel(mlflow.pyfunc.PythonModel):
    """Scores base64-encoded images with the bundled detector."""

    def load_context(self, context: Any) -> None:
        from glcf.inference.detector import Detector

        bundle = Path(context.artifacts["bundle"])
        threads = os.environ.get(THREADS_VARIABLE)  # set by glcf serve; unset: torch's own count
        self.detector = Detector(bundle, threads=int(threads) if threads else None)
        config = dict(context.model_config or {})
        self.limits = {k: int(config.get(k, v)) for k, v in DEFAULT_LIMITS.items()}
        self.category = config.get("category", "")
        # the registry version is written next to the model's artifacts after registration
        registry = bundle.parent.parent / "registry.json"
        self.version = json.loads(registry.read_text())["version"] if registry.exists() else None

    def _images(self, model_input: Any) -> list[Any]:
        from glcf.inference.detector import ImageDecodeError, decode_image

        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        if not isinstance(model_input, pd.DataFrame) or "image" not in model_input.columns:
            msg = "the request needs a column 'image' with base64-encoded PNG or JPEG bytes"
            raise bad_request(msg)
        values = list(model_input["image"])
        if not values:
            msg = "empty batch: send at least one image"
            raise bad_request(msg)
        if len(values) > self.limits["max_batch"]:
            msg = f"batch of {len(values)} images exceeds the limit of {self.limits['max_batch']}"
            raise bad_request(msg)
        images = []
        for i, value in enumerate(values):
            name = f"image {i}"
            if not isinstance(value, str | bytes) or not value:
                msg = f"{name}: expected a non-empty base64 string, got {type(value).__name__}"
                raise bad_request(msg)
            limit = self.limits["max_image_bytes"]
            if len(value) > limit * 4 // 3 + 4:
                msg = f"{name}: {len(value)} base64 characters exceed the limit of {limit} bytes"
                raise bad_request(msg)
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                msg = f"{name}: not valid base64 ({exc})"
                raise bad_request(msg) from None
            if len(data) > self.limits["max_image_bytes"]:
                msg = f"{name}: {len(data)} bytes exceed the limit of {self.limits['max_image_bytes']} bytes"
                raise bad_request(msg)
            try:
                images.append(decode_image(data, name=name, max_pixels=self.limits["max_image_pixels"]))
            except ImageDecodeError as exc:
                raise bad_request(str(exc)) from None
        return images

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        params = params or {}
        return_map = bool(params.get("return_map", False))
        map_size = str(params.get("map_size", "original"))
        if map_size not in ("original", "model"):
            msg = f"params.map_size must be original or model, got {map_size!r}"
            raise bad_request(msg)
        images = self._images(model_input)
        detections = self.detector.score(images, return_maps=return_map, map_size=map_size)
        out = []
        for det in detections:
            row: dict[str, Any] = {
                "score": det.score,
                "is_anomaly": det.is_anomaly,
                "threshold": det.threshold,
                "local_score": det.local_score,
                "global_score": det.global_score,
                "model_version": self.version,
                "category": self.category,
            }
            if return_map and det.anomaly_map is not None:
                row["anomaly_map"] = det.anomaly_map.tolist()
            out.append(row)
        return out


mlflow.models.set_model(GLCFServedModel())
