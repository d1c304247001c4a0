"""Stage ``register``: log the served model (MLflow pyfunc) and register it as ``@challenger``.

The pyfunc holds every weight (encoder included), the resolved config, the normalisation statistics
and the threshold in one bundle, the ``glcf`` library as code, a signature and an input example, so
that ``models:/glcf-<category>@champion`` loads in a clean process with no network.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import registry
from pipelines.io import read_json, write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.stages.common import load_prepared, numeric_summary

logger = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).resolve().parents[1] / "serving" / "model_code.py"
GLCF_CODE = Path(__file__).resolve().parents[2] / "glcf"
SERVED_PACKAGES = ("torch", "timm", "numpy", "scipy", "pandas", "pillow", "scikit-learn", "mlflow", "tqdm", "pyyaml")


@dataclass(frozen=True)
class RegisterResult:
    """The registered model version."""

    model_name: str
    version: str
    model_uri: str
    run_id: str


def pip_requirements() -> list[str]:
    """Exact versions of what the served model imports (local labels such as +cu132 dropped)."""
    reqs = []
    for name in SERVED_PACKAGES:
        version = importlib.metadata.version(name).split("+", 1)[0]
        reqs.append(f"{name}=={version}")
    return reqs


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array

    outputs = [  # one row per image: glcf.serving.requests.answer_rows
        *(ColSpec("double", name) for name in ("score", "threshold", "local_score", "global_score")),
        ColSpec("boolean", "is_anomaly"),
        ColSpec("string", "model_version"),
        ColSpec("string", "category"),
        ColSpec(Array(Array(DataType.double)), "anomaly_map", required=False),  # with return_map only
    ]
    return ModelSignature(
        inputs=Schema([ColSpec("string", "image")]),
        outputs=Schema(outputs),
        params=ParamSchema([ParamSpec("return_map", "boolean", False), ParamSpec("map_size", "string", "original")]),
    )


def input_example(image_path: Path) -> Any:
    """One real test image, base64-encoded as a request would carry it (downsized PNG)."""
    import pandas as pd
    from PIL import Image

    with Image.open(image_path) as img:
        img = img.convert("RGB")
        img.thumbnail((96, 96))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode("ascii")]})


def run_register(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> RegisterResult:
    from pipelines import tracking

    _check_export_modules(params.register.export_formats)  # before anything is registered
    data, manifest = load_prepared(params, paths)
    calibration = read_json(paths.calibration, "calibration (run the calibrate stage first)")
    summary = numeric_summary(read_json(paths.metrics, "metrics (run the evaluate stage first)"))
    run_info = read_json(paths.run_info, "MLflow run record (run the train stage first)")
    name = params.model_name(paths.category)
    split_hash = manifest["hashes"]["test"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        tracking.category_run(params, paths, stage="register", data_hash=manifest["hashes"]["data"]) as run,
    ):
        extra = {"category": paths.category, "train_id": run_info["train_id"], "test_split_hash": split_hash}
        example = input_example(data.test[0].path) if data.test else None
        version = _log_served_model(params, paths, Path(tmp), calibration, extra, example)
        commit, dirty = tracking.git_commit(paths.root)
        registry.tag_version(
            name,
            version,
            {
                **registry.metric_tags(summary, split_hash, params.register.gated_metrics),
                "glcf.category": paths.category,
                "glcf.train_id": run_info["train_id"],
                registry.RUN_TAG: run.info.run_id,
                "glcf.data_hash": manifest["hashes"]["data"],
                "glcf.variant": params.register.variant,
                "glcf.threshold": repr(float(calibration["threshold"]["value"])),
                "mlflow.source.git.commit": commit,
            },
        )
        registry.set_alias(name, registry.CHALLENGER, version)
        run_id = run.info.run_id
    exports = _export_version(name, version, params.register.export_formats)
    record = {
        "model_name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "alias": registry.CHALLENGER,
        "run_id": run_id,
        "test_split_hash": split_hash,
        "metrics": summary,
        "git_dirty": dirty,
        "exports": exports,
    }
    write_json(paths.registration, record)
    logger.info("%s: registered version %s as @%s", name, version, registry.CHALLENGER)
    if exports:
        logger.info("%s: version %s logged with %s", name, version, ", ".join(exports))
    return RegisterResult(name, version, record["model_uri"], run_id)


def _check_export_modules(formats: tuple[str, ...]) -> None:
    from pipelines.export import missing_modules

    missing = missing_modules(formats)
    if missing:
        msg = (
            f"register.export_formats: {', '.join(formats)} needs the optional extra 'export' "
            f"(missing: {', '.join(missing)}); install it or leave the list empty"
        )
        raise ValueError(msg)


def _export_version(name: str, version: str, formats: tuple[str, ...]) -> list[str]:
    """Export the registered version in each of ``formats`` and log the files with it; their artifact paths."""
    from pipelines.export import artifact_dir, files_of, registered_export

    paths = []
    for fmt in dict.fromkeys(formats):
        paths += [f"{artifact_dir(version)}/{f.name}" for f in files_of(registered_export(name, version, fmt))]
    return paths


def _log_served_model(
    params: PipelineParams,
    paths: CategoryPaths,
    tmp: Path,
    calibration: dict[str, Any],
    extra: dict[str, str],
    example: Any,
) -> str:
    """Log the pyfunc (bundle, code, signature, limits) in the active run and register it; its version."""
    import mlflow
    from mlflow import MlflowClient

    from glcf.model.checkpoint import export_full_model
    from glcf.model.stats import NormStats
    from pipelines.stages.calibrate import load_model

    name = params.model_name(paths.category)
    bundle = export_full_model(
        tmp / "bundle.pt",
        load_model(params, paths),
        NormStats.from_dict(calibration["norm_stats"]),
        calibration["threshold"]["value"],
        extra=extra,
    )
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        artifacts={"bundle": str(bundle)},
        code_paths=[str(GLCF_CODE)],
        signature=signature(),
        input_example=example,
        model_config={"category": paths.category, **params.serve.limits()},
        pip_requirements=pip_requirements(),
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    # described only now: a failed log_model (e.g. artifact store down) leaves no registry entry behind
    registry.describe(name, f"GLCF logical anomaly detector for {paths.category!r}")
    registry_file = tmp / "registry.json"
    write_json(registry_file, {"name": name, "version": version})
    MlflowClient().log_model_artifact(info.model_id, str(registry_file))
    return version
