"""``glcf report``: the headline results of every category, from the pipeline's reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pipelines.params import PipelineParams

COLUMNS = (
    ("image AUROC", "image_auroc_total"),
    ("logical", "image_auroc_logical_anomalies"),
    ("structural", "image_auroc_structural_anomalies"),
    ("pixel AUROC", "pixel_auroc"),
    ("sPRO@0.05", "spro_0.05_mean"),
    ("PRO@0.3", "pro_0.3_total"),
    ("F1", "f1_total"),
)


def report_rows(params: PipelineParams) -> list[dict[str, Any]]:
    """One row per category: its headline metrics and its registry state (None where not run yet)."""
    rows = []
    for category in params.data.categories:
        paths = params.category_paths(category)
        row: dict[str, Any] = {"category": category}
        if paths.metrics.exists():
            summary = json.loads(paths.metrics.read_text())["summary"]
            row |= {key: summary.get(key) for _, key in COLUMNS}
        if paths.promotion.exists():
            promo = json.loads(paths.promotion.read_text())
            row["version"] = promo["challenger_version"]
            row["champion"] = promo["champion_version_after"]
        rows.append(row)
    return rows


def report(
    params: Annotated[Path, typer.Option("--params", "-p", help="parameter file")] = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Print each category's test metrics and its registry versions (after dvc repro or glcf flow)."""
    from pipelines.commands.options import load_params_or_exit

    rows = report_rows(load_params_or_exit(params, "report"))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    keys = [key for _, key in COLUMNS if any(row.get(key) is not None for row in rows)]
    heads = ["category", *[h for h, k in COLUMNS if k in keys], "version", "champion"]
    table = [heads]
    for row in rows:
        values = [f"{row[k]:.3f}" if isinstance(row.get(k), float) else "–" for k in keys]
        table.append([row["category"], *values, str(row.get("version", "–")), str(row.get("champion", "–"))])
    widths = [max(len(r[i]) for r in table) for i in range(len(heads))]
    for i, r in enumerate(table):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            typer.echo("  ".join("-" * w for w in widths))
