"""``glcf report``: the headline results of every category, from the pipeline's reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipelines.stages.evaluate import HEADLINE

if TYPE_CHECKING:
    from pipelines.params import PipelineParams

#: ``glcf report``'s columns: every headline figure (``pipelines.stages.evaluate.HEADLINE``) but the branches'
#: (they are in the per-defect table), under these labels.
LABELS = {
    "auroc": "image AUROC",
    "logical": "logical",
    "structural": "structural",
    "pixel_auroc": "pixel AUROC",
    "spro_0.05": "sPRO@0.05",
    "pro_0.3": "PRO@0.3",
    "f1": "F1",
    "fpr_good": "FPR good",
    "fpr_target": "target",
}
COLUMNS = tuple((label, HEADLINE[short]) for short, label in LABELS.items())
#: Per defect type (metrics.json "image_auroc_defect"): the model's fused score, then each branch alone.
DEFECT_SCORES = (("fused", "model"), ("local", "local"), ("global", "global"))


def report_rows(params: PipelineParams) -> list[dict[str, Any]]:
    """One row per category: its headline metrics and its registry state (None where not run yet)."""
    rows = []
    for category in params.data.categories:
        paths = params.category_paths(category)
        row: dict[str, Any] = {"category": category}
        if paths.metrics.exists():
            metrics = json.loads(paths.metrics.read_text())
            summary = metrics["summary"]
            row |= {key: summary.get(key) for _, key in COLUMNS}
            aucs = metrics.get("image_auroc_defect", {})
            row["defects"] = [
                {"defect": name, **kind, **{h: aucs.get(name, {}).get(k) for h, k in DEFECT_SCORES}}
                for name, kind in metrics.get("defect_types", {}).items()
            ]
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
        values = [_cell(row.get(k)) for k in keys]
        table.append([row["category"], *values, str(row.get("version", "–")), str(row.get("champion", "–"))])
    _echo_table(table)
    defects = [[r["category"], d] for r in rows for d in r.get("defects", [])]
    if defects:
        typer.echo("\nimage AUROC per defect type (fused / local branch alone / global branch alone)")
        table = [["category", "defect", "group", "relational", *[h for h, _ in DEFECT_SCORES]]]
        for category, d in defects:
            flag = "yes" if d["relational"] else "no"
            table.append([category, d["defect"], d["group"], flag, *[_cell(d[h]) for h, _ in DEFECT_SCORES]])
        _echo_table(table)


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "–"


def _echo_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for i, r in enumerate(table):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            typer.echo("  ".join("-" * w for w in widths))
