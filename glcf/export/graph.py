"""The whole detector as one graph: ONNX (torch's exporter) and OpenVINO (converted from the ONNX file).

:class:`DetectorGraph` wraps a filled, calibrated :class:`~glcf.model.GLCFModel` and its
:class:`~glcf.inference.scoring.AnomalyScorer`: ``uint8 [B, S, S, 3]`` resized RGB images in, the image score,
the anomaly map and the two branch scores out. It calls the model and scoring code unchanged, so the
graph computes what the in-process detector computes: normalisation, frozen encoder, bottleneck,
decoders, per-scale maps, smoothing, z-scores, the memories, fusion and the image score. The batch is
dynamic; the threshold and the model's metadata are stored in the file (ONNX ``metadata_props``, the
OpenVINO model's ``rt_info``). :mod:`glcf.export.run` runs the files without torch.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from glcf.config import config_to_dict
from glcf.export.run import INPUT_NAME, METADATA_KEY, OUTPUT_NAMES

__all__ = ["DetectorGraph", "export_metadata", "export_onnx", "onnx_to_openvino"]

#: ONNX opset of the exported graph (what the dynamo exporter writes natively).
OPSET = 18


class DetectorGraph(nn.Module):
    """The detector from resized 8-bit RGB images to scores and maps, as one module.

    Args:
        model: a GLCF model with filled memories, in eval mode.
        scorer: its :class:`~glcf.inference.scoring.AnomalyScorer` (calibrated statistics).

    ``forward(images)``: ``uint8 [B, S, S, 3]`` (the output of :func:`glcf.data.transforms.resize_rgb`,
    stacked) to ``(image_score [B], anomaly_map [B, S, S], local_score [B], global_score [B])``.
    """

    def __init__(self, model: nn.Module, scorer: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.scorer = scorer
        self.register_buffer("pixel_mean", torch.tensor(model.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(model.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = images.to(torch.float32).div(255.0).permute(0, 3, 1, 2)  # as glcf.data.transforms.normalize
        out = self.scorer(self.model((x - self.pixel_mean) / self.pixel_std))
        return out.image_score, out.anomaly_map, out.local_score, out.global_score


def export_metadata(model: nn.Module, threshold: float, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The strings stored in an exported file: threshold, input size, scoring settings and ``extra``."""
    meta = {
        "threshold": repr(float(threshold)),
        "image_size": str(int(model.config.image_size)),
        "scoring": json.dumps(config_to_dict(model.config.scoring), sort_keys=True),
        "mean": json.dumps(list(model.mean)),
        "std": json.dumps(list(model.std)),
        "input": f"{INPUT_NAME}: uint8 [batch, {model.config.image_size}, {model.config.image_size}, 3] RGB",
        "outputs": ", ".join(OUTPUT_NAMES),
    }
    for key, value in (extra or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return meta


def export_onnx(graph: DetectorGraph, path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Write ``graph`` as an ONNX file with a dynamic batch and ``metadata`` in its ``metadata_props``.

    The dynamo exporter (``torch.export``) is used: it keeps the batch symbolic through the decoders'
    window reshapes, where the TorchScript tracer records sizes as constants.
    """
    import onnx

    path = Path(path)
    size = graph.model.config.image_size
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(dict(metadata), sort_keys=True)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(path)
    return path


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path) -> Path:
    """Convert an exported ONNX file to OpenVINO IR (``.xml`` + ``.bin``), metadata carried over."""
    import onnx
    import openvino as ov

    onnx_path, xml_path = Path(onnx_path), Path(xml_path)
    if xml_path.suffix != ".xml":
        msg = f"{xml_path}: an OpenVINO model is written as <name>.xml (+ <name>.bin)"
        raise ValueError(msg)
    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        msg = f"{onnx_path}: not a GLCF export (no {METADATA_KEY!r} metadata)"
        raise ValueError(msg)
    model = ov.convert_model(str(onnx_path))
    model.set_rt_info(props[METADATA_KEY], [METADATA_KEY])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path
