"""The served model's request checks and answer rows, shared by the MLflow pyfunc and the onnxruntime server.

No torch and no MLflow here: ``pipelines/serving/model_code.py`` turns :class:`BadRequestError` into
MLflow's ``INVALID_PARAMETER_VALUE`` (HTTP 400), ``pipelines/serving/onnx_server.py`` into the same
HTTP 400 answer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from glcf.serving.detection import Detection, ImageDecodeError, decode_image

__all__ = ["DEFAULT_LIMITS", "BadRequestError", "answer_rows", "decode_images", "map_params"]

DEFAULT_LIMITS = {"max_image_bytes": 20_000_000, "max_image_pixels": 40_000_000, "max_batch": 32}


class BadRequestError(ValueError):
    """A malformed request; the message is the answer's."""


def map_params(params: Mapping[str, Any] | None) -> tuple[bool, str]:
    """``(return_map, map_size)`` of the request's params."""
    params = params or {}
    return_map = bool(params.get("return_map", False))
    map_size = str(params.get("map_size", "original"))
    if map_size not in ("original", "model"):
        msg = f"params.map_size must be original or model, got {map_size!r}"
        raise BadRequestError(msg)
    return return_map, map_size


def decode_images(values: Sequence[Any], limits: Mapping[str, int]) -> list[np.ndarray]:
    """The column ``image`` of a request (base64 PNG/JPEG strings) as RGB arrays, within ``limits``."""
    values = list(values)
    if not values:
        msg = "empty batch: send at least one image"
        raise BadRequestError(msg)
    if len(values) > limits["max_batch"]:
        msg = f"batch of {len(values)} images exceeds the limit of {limits['max_batch']}"
        raise BadRequestError(msg)
    images = []
    for i, value in enumerate(values):
        name = f"image {i}"
        if not isinstance(value, str | bytes) or not value:
            msg = f"{name}: expected a non-empty base64 string, got {type(value).__name__}"
            raise BadRequestError(msg)
        limit = limits["max_image_bytes"]
        if len(value) > limit * 4 // 3 + 4:
            msg = f"{name}: {len(value)} base64 characters exceed the limit of {limit} bytes"
            raise BadRequestError(msg)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            msg = f"{name}: not valid base64 ({exc})"
            raise BadRequestError(msg) from None
        if len(data) > limit:
            msg = f"{name}: {len(data)} bytes exceed the limit of {limit} bytes"
            raise BadRequestError(msg)
        try:
            images.append(decode_image(data, name=name, max_pixels=limits["max_image_pixels"]))
        except ImageDecodeError as exc:
            raise BadRequestError(str(exc)) from None
    return images


def answer_rows(
    detections: Sequence[Detection], version: str | None, category: str, return_map: bool
) -> list[dict[str, Any]]:
    """One answer row per image: scores, decision, threshold, version, category (and the map on request)."""
    out = []
    for det in detections:
        row: dict[str, Any] = {
            "score": det.score,
            "is_anomaly": det.is_anomaly,
            "threshold": det.threshold,
            "local_score": det.local_score,
            "global_score": det.global_score,
            "model_version": version,
            "category": category,
        }
        if return_map and det.anomaly_map is not None:
            row["anomaly_map"] = det.anomaly_map.tolist()
        out.append(row)
    return out
