"""The export formats and their file suffixes (no imports: the params file and the torch-free path read them)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["EXPORT_FORMATS", "FORMAT_OF_SUFFIX", "FORMAT_SUFFIX", "ExportFormat"]

ExportFormat = Literal["onnx", "openvino"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
FORMAT_SUFFIX: dict[str, str] = dict(zip(EXPORT_FORMATS, (".onnx", ".xml"), strict=True))  # OpenVINO: .xml + .bin
FORMAT_OF_SUFFIX: dict[str, str] = {suffix: fmt for fmt, suffix in FORMAT_SUFFIX.items()}
