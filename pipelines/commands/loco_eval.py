"""``glcf loco-eval``: score any model's MVTec LOCO AD anomaly maps the way the field does (docs/evaluation.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer


def loco_eval(
    anomaly_maps_dir: Annotated[
        Path, typer.Option(help="base folder of the maps: <dir>/<category>/test/<type>/<stem>.tiff (or .npy)")
    ],
    dataset_base_dir: Annotated[Path, typer.Option(help="MVTec LOCO AD base folder holding <category>/")],
    category: Annotated[str, typer.Option(help="category to evaluate, e.g. breakfast_box")],
    out: Annotated[Path | None, typer.Option(help="also write the metrics JSON to this file")] = None,
    resize: Annotated[
        bool, typer.Option(help="resize maps of another size to the image size (bilinear); --no-resize: error")
    ] = True,
) -> None:
    """Print image AUROC (map maximum; total, logical, structural, mean), pixel AUROC and sPRO per type as JSON.

    sPRO is computed exactly (all distinct scores) with each defect's saturation threshold from
    defects_config.json, at the images' original resolution, for FPR limits 0.01, 0.05, 0.1, 0.3 and 1.0.
    A missing map is an error naming the file; resized maps are counted in "resized_maps" and warned about.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from glcf.data import DatasetLayoutError
    from glcf.metrics import evaluate_loco_maps

    try:
        result = evaluate_loco_maps(anomaly_maps_dir, dataset_base_dir, category, resize=resize)
    except (FileNotFoundError, DatasetLayoutError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)
