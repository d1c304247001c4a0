"""Score image files with a registered model (``glcf predict``): the same detector the server runs.

The model version behind ``models:/<prefix>-<category>@<alias>`` is downloaded from the registry and
its bundle (weights, statistics, threshold) loaded into :class:`glcf.inference.detector.Detector`, the class the
served pyfunc wraps, so a file scores here exactly as it does on ``/invocations``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ModelNotFoundError(LookupError):
    """The registry has no version behind the requested alias."""


@dataclass(frozen=True)
class FilePrediction:
    """The verdict on one file."""

    path: Path
    score: float
    is_anomaly: bool
    threshold: float
    model_version: str
    map_path: Path | None = None


def load_registered(model_name: str, alias: str, dst: Path) -> tuple[Any, str]:
    """Download ``models:/<model_name>@<alias>`` into ``dst``; returns its detector and version.

    Raises:
        ModelNotFoundError: no such model or alias in the tracking store.
    """
    from pipelines import registry

    version = registry.by_alias(model_name, alias)
    if version is None:
        msg = f"registered model {model_name!r} has no alias @{alias} (run the pipeline first, or pick another alias)"
        raise ModelNotFoundError(msg)
    return registry.download_detector(model_name, version.version, dst), version.version


def write_overlay(image: np.ndarray, amap: np.ndarray, path: Path, *, vmin: float, vmax: float, title: str) -> Path:
    """The image with its anomaly map overlaid (jet, fixed range ``[vmin, vmax]``) and a colour bar."""
    from matplotlib.figure import Figure

    h, w = image.shape[:2]
    fig = Figure(figsize=(4.0 * w / max(h, w) + 0.8, 4.0 * h / max(h, w) + 0.4))
    ax = fig.subplots()
    ax.imshow(image)
    shown = ax.imshow(amap, cmap="jet", alpha=0.45, vmin=vmin, vmax=vmax)
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return path


def read_images(files: Sequence[Path]) -> list[np.ndarray]:
    """Every file as ``uint8 [H, W, 3]``; a missing or unreadable file raises ``ValueError`` naming it."""
    from glcf.data.images import load_image

    images = []
    for f in files:
        if not Path(f).is_file():
            msg = f"{f}: no such image file"
            raise ValueError(msg)
        images.append(load_image(Path(f)))
    return images


def predict_files(
    model_name: str, alias: str, files: Sequence[Path], *, map_dir: Path | None = None, batch_size: int = 8
) -> list[FilePrediction]:
    """Score ``files`` with the registered model; with ``map_dir``, also write one overlay PNG per file.

    Raises:
        ModelNotFoundError: no version behind the alias.
        ValueError: a file that is missing or not a readable image (named in the message).
    """
    images = read_images(files)
    with tempfile.TemporaryDirectory(prefix="glcf-predict-") as tmp:
        detector, version = load_registered(model_name, alias, Path(tmp))
        detections = detector.score(images, return_maps=map_dir is not None, batch_size=batch_size)
    return file_predictions(files, images, detections, version, map_dir)


def predict_files_exported(
    model_file: Path, files: Sequence[Path], *, map_dir: Path | None = None, batch_size: int = 8
) -> list[FilePrediction]:
    """As :func:`predict_files` with an exported file (``.onnx`` or OpenVINO ``.xml``); no registry, no torch.

    Raises:
        ValueError: a model file that is not an export, or a bad image file (named in the message).
    """
    from glcf.export.run import ExportedDetector

    images = read_images(files)
    detector = ExportedDetector(model_file)
    detections = detector.score(images, return_maps=map_dir is not None, batch_size=batch_size)
    return file_predictions(files, images, detections, str(detector.version), map_dir)


def file_predictions(
    files: Sequence[Path], images: Sequence[np.ndarray], detections: Sequence[Any], version: str, map_dir: Path | None
) -> list[FilePrediction]:
    """One row per file; with ``map_dir``, an overlay PNG per file on one colour range for all."""
    out = []
    maps = [d.anomaly_map for d in detections if d.anomaly_map is not None]
    lo = min((float(m.min()) for m in maps), default=0.0)
    hi = max((float(m.max()) for m in maps), default=1.0)
    used: set[str] = set()
    for f, image, det in zip(files, images, detections, strict=True):
        map_path = None
        if map_dir is not None and det.anomaly_map is not None:
            stem = Path(f).stem
            name, i = f"{stem}_map.png", 1
            while name in used:  # same stem in two folders
                i += 1
                name = f"{stem}_{i}_map.png"
            used.add(name)
            decision = "ANOMALOUS" if det.is_anomaly else "normal"
            title = f"{Path(f).name}: score {det.score:.4g} {decision} (threshold {det.threshold:.4g}, v{version})"
            map_path = write_overlay(image, det.anomaly_map, map_dir / name, vmin=lo, vmax=hi, title=title)
        out.append(FilePrediction(Path(f), det.score, det.is_anomaly, det.threshold, version, map_path))
    return out
