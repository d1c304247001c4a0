"""``glcf evaluate``: metrics.json, plots and a per-image CSV for a trained GLCF model on any supported layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer


def _load(checkpoint: Path, calibration: Path | None) -> tuple[Any, Any, Any]:
    """(model, stats or None, threshold or None) from a training checkpoint or a full export; statistics and
    threshold from ``calibration`` instead when it is given."""
    from glcf.metrics import Threshold
    from glcf.model.checkpoint import FullModel, load_model_file
    from glcf.model.stats import NormStats

    loaded = load_model_file(checkpoint)
    stats, threshold = (loaded.stats, loaded.threshold) if isinstance(loaded, FullModel) else (None, None)
    if calibration is not None:
        record = json.loads(calibration.read_text())
        try:
            stats = NormStats.from_dict(record["norm_stats"])
            threshold = Threshold(**record["threshold"])
        except (KeyError, TypeError) as exc:
            msg = f"{calibration}: not a calibration record (needs norm_stats and threshold.value): {exc!r}"
            raise ValueError(msg) from exc
    return loaded.model, stats, threshold


def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="training checkpoint (glcf.model.checkpoint) or full export")],
    data_root: Annotated[Path, typer.Option(help="dataset root holding <category>/")],
    category: Annotated[str, typer.Option(help="category folder name")],
    out: Annotated[Path, typer.Option(help="report folder: metrics.json, per_image.csv, plots/")],
    format: Annotated[str, typer.Option("--format", help="layout: mvtec, loco or folder")] = "loco",
    calibration: Annotated[
        Path | None, typer.Option(help="calibration.json of the calibrate stage (norm_stats, threshold)")
    ] = None,
    holdout_fraction: Annotated[
        float, typer.Option(help="normal training images held out (no validation split)")
    ] = 0.15,
    seed: Annotated[int, typer.Option(help="seed of the hold-out split")] = 0,
    normal_class: Annotated[str, typer.Option(help="folder layout: the normal class")] = "normal",
    threshold_method: Annotated[
        str, typer.Option(help="gumbel, quantile or mean_std of the held-out normal scores")
    ] = "gumbel",
    quantile: Annotated[float, typer.Option(help="quantile of the threshold")] = 0.99,
    k: Annotated[float, typer.Option(help="k of mean + k * std")] = 3.0,
    batch_size: Annotated[int, typer.Option(help="images per forward pass")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    gallery_size: Annotated[int, typer.Option(help="images in the gallery plot")] = 12,
) -> None:
    """Evaluate a model on a category's test split and write the report.

    Statistics and threshold come from --calibration, else from a full export, else they are
    computed here on the held-out normal images (LOCO validation/good or a seeded hold-out): never
    from test images. Prints the flat metric summary as JSON.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from glcf.data import DatasetLayoutError, read_category
    from glcf.evaluation import evaluate_model
    from glcf.model.checkpoint import CheckpointError
    from pipelines.settings import apply_torch_threads

    apply_torch_threads()
    try:
        model, stats, threshold = _load(checkpoint, calibration)
        data = read_category(
            data_root, category, format, holdout_fraction=holdout_fraction, seed=seed, normal_class=normal_class
        )
        result = evaluate_model(
            model,
            data,
            out,
            stats=stats,
            threshold=threshold,
            threshold_method=threshold_method,
            quantile=quantile,
            k=k,
            batch_size=batch_size,
            device=device,
            gallery_size=gallery_size,
        )
    except (CheckpointError, DatasetLayoutError, ValueError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(json.dumps(result.metrics["summary"], indent=2))
