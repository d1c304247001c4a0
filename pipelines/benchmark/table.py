"""The benchmark's comparison table: rows, CSV, markdown (fits a 120-column terminal) and a PNG chart.

One row per (variant or peer, category) and a ``mean`` row per variant over several categories.
The CSV has every numeric key of each evaluation summary (per anomaly type, per defect type); the
markdown has the headline columns, fit seconds and inference images/s, with the image size in the
title and the peers' layers and reused checkpoints as notes under the table.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: table column -> key of ``metrics.json``'s summary.
COLUMNS = {
    "image_auroc_total": "image_auroc_total",
    "image_auroc_logical": "image_auroc_logical_anomalies",
    "image_auroc_structural": "image_auroc_structural_anomalies",
    "pixel_auroc": "pixel_auroc",
    "spro_0.05": "spro_0.05_mean",
}
#: table column -> markdown header.
HEADERS = {
    "image_auroc_total": "img total",
    "image_auroc_logical": "img logical",
    "image_auroc_structural": "img struct",
    "pixel_auroc": "pixel",
    "spro_0.05": "sPRO .05",
}
MARKDOWN_WIDTH = 120


def _finite_mean(values: Sequence[Any]) -> float:
    kept = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def _extra_keys(results: Sequence[Any]) -> list[str]:
    """Numeric summary keys beyond the headline columns, in first-seen order (CSV only)."""
    headline = set(COLUMNS.values())
    keys: dict[str, None] = {}
    for r in results:
        keys |= {k: None for k, v in r.summary.items() if k not in headline and isinstance(v, int | float)}
    return list(keys)


def _row(r: Any, extras: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": r.variant, "kind": r.kind, "category": r.category}
    row |= {col: r.summary.get(key, float("nan")) for col, key in COLUMNS.items()}
    row |= {
        "train_seconds": r.train_seconds,
        "images_per_second": r.images_per_second,
        "image_size": r.image_size,
        "checkpoint_from": r.checkpoint_from or "",
        "note": r.note,
        "run_id": r.run_id,
    }
    return row | {key: r.summary.get(key, float("nan")) for key in extras}


def table_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per (variant, category), plus a ``mean`` row per variant over several categories.

    ``results`` are :class:`pipelines.benchmark.plan.JobResult`; GLCF variants and peers alike.
    """
    rows: list[dict[str, Any]] = []
    extras = _extra_keys(results)
    for variant in dict.fromkeys(r.variant for r in results):
        mine = [_row(r, extras) for r in results if r.variant == variant]
        rows.extend(mine)
        if len(mine) > 1:
            mean: dict[str, Any] = {"variant": variant, "kind": mine[0]["kind"], "category": "mean"}
            mean |= {col: _finite_mean([row[col] for row in mine]) for col in COLUMNS}
            mean |= {
                "train_seconds": sum(row["train_seconds"] for row in mine),
                "images_per_second": _finite_mean([row["images_per_second"] for row in mine]),
                "image_size": mine[0]["image_size"],
                "checkpoint_from": "",
                "note": mine[0]["note"],
                "run_id": "",
            }
            rows.append(mean | {key: _finite_mean([row[key] for row in mine]) for key in extras})
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _short(value: Any) -> str:
    """Seconds and rates: one decimal below 100, none above (keeps the markdown narrow)."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def _notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    for row in rows:
        if row["category"] == "mean":
            continue
        if row.get("checkpoint_from"):
            notes.append(f"- {row['variant']} @ {row['category']}: checkpoint of {row['checkpoint_from']} (fit s = 0)")
    seen = set()
    for row in rows:
        if row.get("kind") == "peer" and row["variant"] not in seen:
            seen.add(row["variant"])
            notes.append(f"- {row['variant']}: anomalib peer, layers/stride {row.get('note') or '?'}")
    return notes


def _title(rows: Sequence[dict[str, Any]], title: str) -> str:
    sizes = sorted({int(r["image_size"]) for r in rows if r.get("image_size")})
    return f"# {title}" + (f", {'/'.join(map(str, sizes))} px" if sizes else "")


def markdown_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """The comparison as a markdown table (best value per category and metric in bold)."""
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        for col in COLUMNS:
            if math.isfinite(row[col]):
                best[(row["category"], col)] = max(best.get((row["category"], col), -math.inf), row[col])
    header = ["variant", "category", *(HEADERS[c] for c in COLUMNS), "fit s", "img/s"]
    lines = [_title(rows, title), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["variant"], row["category"]]
        for col in COLUMNS:
            value = row[col]
            text = "–" if not math.isfinite(value) else f"{value:.4f}"
            if math.isfinite(value) and value == best[(row["category"], col)] and len(rows) > 1:
                text = f"**{text}**"
            cells.append(text)
        cells += [_short(row["train_seconds"]), _short(row.get("images_per_second", float("nan")))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(rows)
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def plot_chart(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per variant (mean over categories); peers hatched."""
    import numpy as np
    from matplotlib.figure import Figure

    categories = {r["category"] for r in rows if r["category"] != "mean"}
    shown = [r for r in rows if (r["category"] == "mean") == (len(categories) > 1)]
    variants = [r["variant"] for r in shown]
    fig = Figure(figsize=(max(6.0, 2.0 + 0.28 * len(COLUMNS) * len(variants)), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(1, len(variants))
    x = np.arange(len(COLUMNS))
    for i, row in enumerate(shown):
        values = [row[c] if math.isfinite(row[c]) else 0.0 for c in COLUMNS]
        hatch = "//" if row.get("kind") == "peer" else None
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, values, width, label=row["variant"], hatch=hatch)
    ax.set_xticks(x, list(COLUMNS), fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over categories" if len(categories) > 1 else next(iter(categories), ""))
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle="--")
    ax.legend(fontsize=7, ncols=min(4, max(1, len(variants))), loc="upper right")
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return path
