"""A ready-to-use GLCF detector: full weights, statistics, threshold and the one preprocessing path.

This is what the served model and ``glcf predict`` run: images in (files, bytes or RGB arrays of any
size), scores, decisions at the calibrated threshold and anomaly maps out. It needs no network: the
bundle written by :func:`glcf.model.checkpoint.export_full_model` holds every weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from glcf.data.transforms import normalize, resize_rgb
from glcf.inference.scoring import AnomalyScorer
from glcf.serving.detection import Detection, ImageDecodeError, decode_image, detect

#: The bundle's file name among a registered model's artifacts (what the register stage logs).
BUNDLE_FILE = "bundle.pt"

__all__ = ["BUNDLE_FILE", "Detection", "Detector", "ImageDecodeError", "decode_image"]


class Detector:
    """Score images with a fully exported GLCF model.

    Args:
        bundle: a file written by :func:`glcf.model.checkpoint.export_full_model` (with statistics and a
            threshold).
        device: ``cpu`` (default), ``cuda`` or ``auto``.
        threads: torch's intra-op threads for this process (:func:`glcf.runtime.set_torch_threads`);
            None leaves torch's setting as it is.
    """

    def __init__(self, bundle: str | Path, device: str = "cpu", *, threads: int | None = None) -> None:
        from glcf.model.checkpoint import load_full_model
        from glcf.runtime import resolve_device, set_torch_threads

        if threads is not None:
            set_torch_threads(threads)
        full = load_full_model(bundle)
        if full.stats is None or full.threshold is None:
            msg = f"{bundle}: the export holds no normalisation statistics or threshold (run calibrate first)"
            raise ValueError(msg)
        self.device = resolve_device(device)
        self.model = full.model.to(self.device).eval()
        self.config = full.config
        self.scorer = AnomalyScorer(full.config.scoring, full.stats, full.config.image_size)
        self.threshold = float(full.threshold)
        self.extra = full.extra
        self.image_size = self.config.image_size

    @classmethod
    def from_registry(
        cls, uri: str, *, tracking_uri: str | None = None, device: str = "cpu", threads: int | None = None
    ) -> Detector:
        """Load a registered model version from the MLflow registry in one call.

        Args:
            uri: ``models:/<name>@<alias>`` (e.g. ``models:/glcf-pushpins@champion``) or
                ``models:/<name>/<version>``.
            tracking_uri: the tracking and registry store; default MLflow's current one
                (``MLFLOW_TRACKING_URI``).
            device: as for :class:`Detector`.
            threads: as for :class:`Detector`.

        Raises:
            ValueError: a malformed URI, or no such model, alias or version (one line naming ``uri``).

        MLflow is imported only here: the rest of ``glcf`` never needs it.
        """
        import tempfile

        with tempfile.TemporaryDirectory(prefix="glcf-registry-") as tmp:
            local = _download_registered(uri, tracking_uri, tmp)
            return cls(local / "artifacts" / BUNDLE_FILE, device, threads=threads)

    def _batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        arrays = np.stack([resize_rgb(im, self.image_size) for im in images])
        return normalize(arrays, self.model.mean, self.model.std).to(self.device)

    @torch.inference_mode()
    def score(
        self,
        images: Sequence[np.ndarray | str | Path],
        *,
        return_maps: bool = False,
        map_size: str = "original",
        batch_size: int = 8,
    ) -> list[Detection]:
        """Score RGB arrays (``uint8 [H, W, 3]``) or image files.

        Args:
            images: the images, any sizes.
            return_maps: include the anomaly maps.
            map_size: ``original`` (each image's size) or ``model`` (``S x S``).
            batch_size: images per forward pass.
        """

        def score_chunk(chunk: list[np.ndarray]) -> tuple[np.ndarray, ...]:
            result = self.scorer(self.model(self._batch(chunk)))
            parts = (result.image_score, result.anomaly_map, result.local_score, result.global_score)
            return tuple(t.float().cpu().numpy() for t in parts)

        return detect(
            images, score_chunk, self.threshold, return_maps=return_maps, map_size=map_size, batch_size=batch_size
        )


def _download_registered(uri: str, tracking_uri: str | None, dst: str) -> Path:
    """Download the model folder of a ``models:/name@alias`` or ``models:/name/version`` URI into ``dst``.

    The version is resolved with an explicit client and downloaded from the logged model's own
    location, so ``tracking_uri`` is honoured for both.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/") if uri.startswith("models:/") else ""
    name, sep, alias = ref.partition("@")
    if not sep:
        name, _, version = ref.partition("/")
    if not name or not (alias if sep else version) or "/" in name:
        msg = f"{uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
        raise ValueError(msg)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias) if sep else client.get_model_version(name, version)
        model_id = mv.model_id or mv.source.removeprefix("models:/")  # the SQL store leaves model_id empty
        location = client.get_logged_model(model_id).artifact_location
        local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=dst, tracking_uri=tracking_uri)
    except MlflowException as exc:
        msg = f"{uri}: {exc.message}"
        raise ValueError(msg) from None
    return Path(local)
