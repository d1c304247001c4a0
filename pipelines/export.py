"""``glcf export``: a category's detector as one ONNX or OpenVINO file, from a pipeline folder or the registry.

Sources: the pipeline output folder ``models/<category>`` (``model.pt`` and ``calibration.json``,
scored with the scoring settings the calibration was made with) or a registered version (its
``bundle.pt``). The graph is :class:`glcf.export.DetectorGraph`; an export of a registered version
is logged as an artifact (``export/v<N>/<file>``) of the run that registered it, so the version carries
its files in every format, and the files are kept in a local cache keyed by the version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glcf.export.formats import FORMAT_SUFFIX

logger = logging.getLogger(__name__)

EXPORT_DIR = "export"  # artifact folder of the registering run


@dataclass
class ExportSource:
    """A filled, calibrated model ready to export, and what to record about it."""

    model: Any
    scorer: Any
    threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None


def source_from_dir(model_dir: Path) -> ExportSource:
    """``models/<category>``: the trained checkpoint with its calibration (statistics, threshold, scoring).

    Raises:
        ValueError: a missing or incomplete folder (names the file).
    """
    from glcf.config import config_from_dict
    from glcf.inference.scoring import AnomalyScorer
    from glcf.model.checkpoint import load_checkpoint
    from glcf.model.stats import NormStats
    from pipelines.io import read_json

    checkpoint, calibration_file = model_dir / "model.pt", model_dir / "calibration.json"
    for f in (checkpoint, calibration_file):
        if not f.is_file():
            msg = f"{f}: no such file (--model-dir needs a trained and calibrated pipeline folder)"
            raise ValueError(msg)
    calibration = read_json(calibration_file, "calibration")
    try:
        scoring = config_from_dict({"scoring": calibration["scoring"]}).scoring
        stats = NormStats.from_dict(calibration["norm_stats"])
        threshold = float(calibration["threshold"]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{calibration_file}: incomplete calibration ({exc})"
        raise ValueError(msg) from None
    model = load_checkpoint(checkpoint).model
    model.config = model.config.replace(scoring=scoring)
    scorer = AnomalyScorer(scoring, stats, model.config.image_size)
    meta = {"category": model_dir.name, "version": "local", "source": f"{model_dir.name}/model.pt"}
    return ExportSource(model.eval(), scorer, threshold, meta)


def source_from_registry(model_name: str, version: str, dst: Path) -> ExportSource:
    """A registered version: its bundle (every weight, statistics, threshold) and the run that registered it."""
    import mlflow

    from glcf.inference.scoring import AnomalyScorer
    from glcf.model.checkpoint import load_full_model
    from pipelines import registry

    info = registry.get_version(model_name, version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=str(dst)))
    full = load_full_model(local / "artifacts" / "bundle.pt")
    if full.threshold is None or full.stats is None:
        msg = f"models:/{model_name}/{version}: the bundle holds no statistics or threshold"
        raise ValueError(msg)
    meta = {
        **{k: v for k, v in full.extra.items() if isinstance(v, str)},
        "model_name": model_name,
        "version": str(version),
    }
    run_id = info.registering_run
    scorer = AnomalyScorer(full.config.scoring, full.stats, full.config.image_size)
    return ExportSource(full.model.eval(), scorer, float(full.threshold), meta, run_id)


def resolve_version(model_name: str, alias: str | None, version: str | None) -> str:
    """The version number behind ``--version`` or ``--alias`` (default ``champion``)."""
    from pipelines import registry

    if version is not None:
        return str(registry.get_version(model_name, version).version)
    found = registry.by_alias(model_name, alias or registry.CHAMPION)
    if found is None:
        msg = f"registered model {model_name!r} has no alias @{alias or registry.CHAMPION}"
        raise LookupError(msg)
    return found.version


def export_file(source: ExportSource, fmt: str, out: Path) -> Path:
    """Write ``source`` as ``fmt`` (``onnx`` or ``openvino``) to ``out``; returns ``out``."""
    from glcf.export.graph import DetectorGraph, export_metadata, export_onnx, onnx_to_openvino

    if fmt not in FORMAT_SUFFIX:
        msg = f"--format must be one of {', '.join(FORMAT_SUFFIX)}, got {fmt!r}"
        raise ValueError(msg)
    if out.suffix != FORMAT_SUFFIX[fmt]:
        msg = f"--out {out}: a {fmt} file must end in {FORMAT_SUFFIX[fmt]}"
        raise ValueError(msg)
    graph = DetectorGraph(source.model, source.scorer)
    meta = export_metadata(source.model, source.threshold, source.metadata)
    if fmt == "onnx":
        return export_onnx(graph, out, meta)
    with tempfile.TemporaryDirectory(prefix="glcf-export-") as tmp:
        onnx_file = export_onnx(graph, Path(tmp) / "model.onnx", meta)
        return onnx_to_openvino(onnx_file, out)


def files_of(path: Path) -> list[Path]:
    """The files an export consists of (an OpenVINO ``.xml`` has its ``.bin`` beside it)."""
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def artifact_dir(version: str) -> str:
    """A version's folder of exported files in the run that registered it, ``export/v<N>``.

    One folder per version: every version registered from one training (a new calibration, other
    scoring settings) is registered in that training's run.
    """
    return f"{EXPORT_DIR}/v{version}"


def log_export(run_id: str, path: Path, version: str) -> None:
    """Log the exported files as artifacts ``export/v<N>/model.<suffix>`` of ``run_id`` (whatever their local name)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    with tempfile.TemporaryDirectory(prefix="glcf-export-") as tmp:
        for f in files_of(path):
            named = Path(tmp) / ("model" + f.suffix)
            shutil.copyfile(f, named)
            client.log_artifact(run_id, str(named), artifact_dir(version))


def missing_modules(formats: Sequence[str]) -> list[str]:
    """The modules that exporting to ``formats`` needs and this environment lacks (the optional extra ``export``)."""
    needed = ["onnx", "onnxscript", "onnxruntime"] if formats else []
    needed += ["openvino"] if "openvino" in formats else []
    return [name for name in needed if importlib.util.find_spec(name) is None]


def cache_dir(model_name: str, version: str, run_id: str) -> Path:
    """Where exported files of a registered version are kept (``GLCF_CACHE``, else ``~/.cache/glcf``).

    Keyed by the tracking store, the model, the version and the run that registered it: a store
    that is rebuilt from scratch numbers its versions from 1 again.
    """
    import mlflow

    store = hashlib.sha256(mlflow.get_tracking_uri().encode()).hexdigest()[:12]
    root = Path(os.environ.get("GLCF_CACHE") or Path.home() / ".cache" / "glcf")
    return root / store / model_name / f"{version}-{run_id}"


def registered_export(model_name: str, version: str, fmt: str) -> Path:
    """The version's exported ``fmt`` file: from the cache, else its run's artifacts, else exported and logged."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines import registry

    name = "model" + FORMAT_SUFFIX[fmt]
    info = registry.get_version(model_name, version)
    run_id = info.registering_run
    cached = cache_dir(model_name, version, run_id) / name
    if all(f.is_file() for f in files_of(cached)):
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glcf-export-", dir=cached.parent) as tmp:
        try:
            for f in files_of(cached):
                got = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"{artifact_dir(version)}/{f.name}", dst_path=tmp
                )
                shutil.move(got, f)
            logger.info("%s v%s: %s from the run's artifacts", model_name, version, name)
            return cached
        except (MlflowException, OSError):  # not exported yet: export it now
            source = source_from_registry(model_name, version, Path(tmp))
            written = export_file(source, fmt, Path(tmp) / name)
            if source.run_id:
                log_export(source.run_id, written, version)
            for f in files_of(written):
                shutil.move(f, cached.parent / f.name)
    logger.info("%s v%s: exported %s and logged it with the version", model_name, version, name)
    return cached
