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

import json
import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

#: torch's intra-op threads of each server process (``pipelines.settings.THREADS_VARIABLE``; this file runs
#: without the pipelines package, so it names the variable itself and a unit test checks the two agree).
THREADS_VARIABLE = "GLCF_THREADS"


def bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class GLCFServedModel(mlflow.pyfunc.PythonModel):
    """Scores base64-encoded images with the bundled detector."""

    def load_context(self, context: Any) -> None:
        from glcf.inference.detector import Detector
        from glcf.serving.requests import DEFAULT_LIMITS

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
        from glcf.serving.requests import BadRequestError, decode_images

        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        if not isinstance(model_input, pd.DataFrame) or "image" not in model_input.columns:
            msg = "the request needs a column 'image' with base64-encoded PNG or JPEG bytes"
            raise bad_request(msg)
        try:
            return decode_images(list(model_input["image"]), self.limits)
        except BadRequestError as exc:
            raise bad_request(str(exc)) from None

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        from glcf.serving.requests import BadRequestError, answer_rows, map_params

        try:
            return_map, map_size = map_params(params)
        except BadRequestError as exc:
            raise bad_request(str(exc)) from None
        images = self._images(model_input)
        detections = self.detector.score(images, return_maps=return_map, map_size=map_size)
        return answer_rows(detections, self.version, self.category, return_map)


mlflow.models.set_model(GLCFServedModel())
