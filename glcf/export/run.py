"""Run an exported detector (ONNX with onnxruntime, OpenVINO IR with openvino) without torch.

Written by :mod:`glcf.export.graph`. Images in (files or ``uint8 [H, W, 3]`` arrays of any size), the same
:class:`~glcf.serving.detection.Detection` out as :class:`glcf.inference.detector.Detector` gives: resize with the
project's one filter, one graph call per batch, the threshold from the file. torch is imported only to
resize maps back to each image's size (``return_maps`` with ``map_size="original"``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glcf.data.images import resize_rgb
from glcf.export.formats import FORMAT_OF_SUFFIX
from glcf.serving.detection import Detection, detect

__all__ = ["INPUT_NAME", "METADATA_KEY", "OUTPUT_NAMES", "ExportedDetector", "read_metadata"]

INPUT_NAME = "images"
OUTPUT_NAMES = ("image_score", "anomaly_map", "local_score", "global_score")
METADATA_KEY = "glcf"  # one JSON object of strings: threshold, image_size, scoring, category, version...


def _format(path: Path) -> str:
    fmt = FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        msg = f"{path}: not an exported model (expected a .onnx file or an OpenVINO .xml)"
        raise ValueError(msg)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise ValueError(msg)
    return fmt


def _threads(threads: int | None) -> int:
    if threads is not None:
        return max(1, int(threads))
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata stored in an exported file (threshold, image_size, scoring, category, version...)."""
    path = Path(path)
    fmt = _format(path)
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        text = props.get(METADATA_KEY)
    else:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        text = model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) else None
    if text is None:
        msg = f"{path}: not a GLCF export (no {METADATA_KEY!r} metadata)"
        raise ValueError(msg)
    return dict(json.loads(text))


class ExportedDetector:
    """Score images with an exported file (``.onnx``: onnxruntime, ``.xml``: OpenVINO) on the CPU.

    Args:
        path: the exported file.
        threads: intra-op threads (default ``OMP_NUM_THREADS``, else every core).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.format = _format(self.path)
        self.threads = _threads(threads)
        if self.format == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            meta = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        else:
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(self.path))
            meta = model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) else None
            config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32"}
            self._compiled = core.compile_model(model, "CPU", config)
        if meta is None:
            msg = f"{self.path}: not a GLCF export (no {METADATA_KEY!r} metadata)"
            raise ValueError(msg)
        self.metadata: dict[str, str] = dict(json.loads(meta))
        self.threshold = float(self.metadata["threshold"])
        self.image_size = int(self.metadata["image_size"])
        self.version = self.metadata.get("version")
        self.category = self.metadata.get("category", "")

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """The graph's outputs (``OUTPUT_NAMES``) for ``uint8 [B, S, S, 3]`` resized images."""
        if self.format == "onnx":
            return tuple(self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch}))
        result = self._compiled({INPUT_NAME: batch})
        return tuple(np.asarray(result[self._compiled.output(name)]) for name in OUTPUT_NAMES)

    def score(
        self,
        images: Sequence[np.ndarray | str | Path],
        *,
        return_maps: bool = False,
        map_size: str = "original",
        batch_size: int = 8,
    ) -> list[Detection]:
        """As :meth:`glcf.inference.detector.Detector.score`: RGB arrays or image files in, one verdict each."""

        def score_chunk(chunk: list[np.ndarray]) -> tuple[np.ndarray, ...]:
            return self.run(np.stack([resize_rgb(im, self.image_size) for im in chunk]))

        return detect(
            images, score_chunk, self.threshold, return_maps=return_maps, map_size=map_size, batch_size=batch_size
        )
