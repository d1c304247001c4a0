"""``glcf predict``: score image files with a registered model (default: the champion) or an exported file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer


def predict(
    images: Annotated[list[Path], typer.Argument(help="image files (PNG, JPEG, ...; any size, RGB or gray)")],
    category: Annotated[
        str | None, typer.Option("--category", "-c", help="the category whose registered model scores them")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="an exported file (.onnx or OpenVINO .xml) instead")
    ] = None,
    alias: Annotated[str, typer.Option(help="registry alias of the model")] = "champion",
    map_dir: Annotated[
        Path | None, typer.Option(help="write an anomaly-map overlay PNG per image into this folder")
    ] = None,
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of a table")] = False,
    backend: Annotated[
        str, typer.Option(help="with --category: torch (the registered bundle) or onnx (its cached ONNX export)")
    ] = "torch",
) -> None:
    """Print path, score, decision, threshold and model version for each image."""
    log = logging.getLogger("glcf")
    if backend not in ("torch", "onnx"):
        from pipelines.logs import setup_logging

        setup_logging()
        log.error("predict: --backend must be torch or onnx, got %r", backend)
        raise typer.Exit(2)
    if (category is None) == (model is None):
        from pipelines.logs import setup_logging

        setup_logging()
        log.error("predict: give either --category (a registered model) or --model (an exported file)")
        raise typer.Exit(2)
    try:
        rows = _rows(images, category, model, alias, map_dir, params, backend)
    except (LookupError, ValueError) as exc:
        log.error("predict: %s", exc)
        raise typer.Exit(2) from None
    if as_json:
        for r in rows:
            record = {
                "path": str(r.path),
                "score": r.score,
                "is_anomaly": r.is_anomaly,
                "threshold": r.threshold,
                "model_version": r.model_version,
                "map": str(r.map_path) if r.map_path else None,
            }
            typer.echo(json.dumps(record))
        return
    width = max([len("path"), *(len(str(r.path)) for r in rows)])
    typer.echo(f"{'path':<{width}}  {'score':>10}  {'decision':<9}  {'threshold':>10}  version")
    for r in rows:
        decision = "anomalous" if r.is_anomaly else "normal"
        typer.echo(f"{r.path!s:<{width}}  {r.score:>10.4f}  {decision:<9}  {r.threshold:>10.4f}  {r.model_version}")


def _rows(
    images: list[Path],
    category: str | None,
    model: Path | None,
    alias: str,
    map_dir: Path | None,
    params: Path,
    backend: str = "torch",
) -> list[Any]:
    """Score with the exported file (onnxruntime or OpenVINO only) or the registered model."""
    if model is not None:
        from pipelines.logs import setup_logging
        from pipelines.predict import predict_files_exported

        setup_logging()
        return predict_files_exported(model, images, map_dir=map_dir)
    from pipelines.commands.stage import quiet_libraries

    quiet_libraries()  # before MLflow loads: no download progress bars or colour codes on the console
    from pipelines import tracking
    from pipelines.commands.options import load_params_or_exit
    from pipelines.predict import predict_files
    from pipelines.settings import apply_torch_threads

    loaded = load_params_or_exit(params, "predict")
    tracking.configure_tracking(loaded.root)
    apply_torch_threads()
    name = loaded.model_name(category)
    if backend == "onnx":  # the version's export, from the local cache after the first call
        from pipelines.export import registered_export, resolve_version
        from pipelines.predict import predict_files_exported

        exported = registered_export(name, resolve_version(name, alias, None), "onnx")
        return predict_files_exported(exported, images, map_dir=map_dir)
    return predict_files(name, alias, images, map_dir=map_dir)
