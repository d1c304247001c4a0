"""``glcf benchmark-formats``: torch, ONNX (onnxruntime) and OpenVINO side by side on one category.

All three run the same graph (:class:`glcf.export.DetectorGraph` in process, its ONNX export, the
OpenVINO conversion of that file) with the same number of threads, on the category's test split:
image AUROC, the largest score difference to torch, model size, batch-1 latency (p50, p95) and
batch-8 throughput, and the achieved GFLOP/s against the machine's measured fp32 matmul peak
(as ``benchmarks/throughput.py`` reports it). The table goes to ``reports/benchmark_formats/`` as
markdown and CSV and to an MLflow run of the experiment ``glcf-benchmark-formats``.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glcf.export.formats import EXPORT_FORMATS

logger = logging.getLogger(__name__)

EXPERIMENT = "glcf-benchmark-formats"
FORMATS = ("torch", *EXPORT_FORMATS)


@dataclass
class FormatRow:
    """One format's figures."""

    format: str
    image_auroc: float
    max_score_diff: float
    size_mb: float
    p50_ms_b1: float
    p95_ms_b1: float
    images_per_s_b8: float
    gflops_per_s_b8: float
    peak_fraction: float
    speedup_b1: float = 1.0


def _percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times), q) * 1000)


def _runner(fmt: str, graph: Any, files: dict[str, Path], threads: int) -> Any:
    """``uint8 [B, S, S, 3]`` -> image scores, for one format."""
    import torch

    if fmt == "torch":

        def run_torch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return graph(torch.from_numpy(batch))[0].numpy()

        return run_torch
    from glcf.export.run import ExportedDetector

    detector = ExportedDetector(files[fmt], threads=threads)
    return lambda batch: detector.run(batch)[0]


def _size_mb(fmt: str, files: dict[str, Path]) -> float:
    from pipelines.export import files_of

    return sum(f.stat().st_size for f in files_of(files[fmt])) / 1e6


def measure(
    fmt: str, run: Any, images: np.ndarray, labels: np.ndarray, iters: int, flops_per_image: float, peak: float
) -> tuple[FormatRow, np.ndarray]:
    """Scores of the whole split (batch 8), latency at batch 1 and throughput at batch 8 of one format."""
    import torch

    from glcf.metrics import image_auroc
    from glcf.timing import samples

    cpu = torch.device("cpu")
    scores = np.concatenate([run(images[i : i + 8]) for i in range(0, len(images), 8)])
    one, eight = images[:1], np.resize(images, (8, *images.shape[1:]))
    lat = samples(lambda: run(one), cpu, warmup=3, iters=iters)
    thr = samples(lambda: run(eight), cpu, warmup=1, iters=max(3, iters // 4))
    ips = 8 / float(np.median(thr))
    gflops = flops_per_image * ips / 1e9
    row = FormatRow(
        format=fmt,
        image_auroc=float(image_auroc(labels, scores)),
        max_score_diff=0.0,
        size_mb=0.0,
        p50_ms_b1=_percentile_ms(lat, 50),
        p95_ms_b1=_percentile_ms(lat, 95),
        images_per_s_b8=ips,
        gflops_per_s_b8=gflops,
        peak_fraction=gflops / peak,
    )
    return row, scores


def benchmark_formats(model_dir: Path, samples_: list[Any], out_dir: Path, threads: int, iters: int) -> list[FormatRow]:
    """Export ``model_dir`` to ONNX and OpenVINO under ``out_dir`` and measure the three formats."""
    import torch

    from glcf.data.images import load_image, resize_rgb
    from glcf.export.graph import DetectorGraph
    from glcf.timing import count_flops, matmul_peak_gflops
    from pipelines.export import export_file, source_from_dir

    torch.set_num_threads(threads)
    source = source_from_dir(model_dir)
    graph = DetectorGraph(source.model, source.scorer).eval()
    size = source.model.config.image_size
    images = np.stack([resize_rgb(load_image(s.path), size) for s in samples_])
    labels = np.asarray([s.label for s in samples_])
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"onnx": export_file(source, "onnx", out_dir / "model.onnx")}
    files["openvino"] = export_file(source, "openvino", out_dir / "model.xml")
    with tempfile.TemporaryDirectory() as tmp:
        from glcf.model.checkpoint import export_full_model

        files["torch"] = export_full_model(Path(tmp) / "bundle.pt", source.model, source.scorer.stats, 0.0)
        sizes = {fmt: _size_mb(fmt, files) for fmt in FORMATS}
    with torch.inference_mode():
        flops = count_flops(lambda: graph(torch.from_numpy(images[:1])))
    peak, _ = matmul_peak_gflops(torch.device("cpu"), iters=5)
    rows, reference = [], None
    for fmt in FORMATS:
        logger.info("benchmark-formats: %s (%d threads)", fmt, threads)
        row, scores = measure(fmt, _runner(fmt, graph, files, threads), images, labels, iters, flops, peak)
        reference = scores if reference is None else reference
        row.size_mb = sizes[fmt]
        row.max_score_diff = float(np.max(np.abs(scores - reference) / np.maximum(np.abs(reference), 1.0)))
        rows.append(row)
    for row in rows:
        row.speedup_b1 = rows[0].p50_ms_b1 / row.p50_ms_b1
    logger.info("benchmark-formats: %.3g GFLOP per image, matmul peak %.1f GFLOP/s", flops / 1e9, peak)
    return rows


def markdown(rows: list[FormatRow], threads: int) -> str:
    head = (
        "| format | image AUROC | max score diff vs torch | size MB | p50 ms (b1) | p95 ms (b1) | "
        "speed-up b1 vs torch | images/s (b8) | GFLOP/s (b8) | of matmul peak |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.format} | {r.image_auroc:.3f} | {r.max_score_diff:.1e} | {r.size_mb:.1f} | {r.p50_ms_b1:.1f} | "
        f"{r.p95_ms_b1:.1f} | {r.speedup_b1:.2f}x | {r.images_per_s_b8:.1f} | {r.gflops_per_s_b8:.1f} | "
        f"{100 * r.peak_fraction:.0f}% |\n"
        for r in rows
    )
    return head + body + f"\n{threads} thread(s) for every format.\n"


def write_reports(rows: list[FormatRow], threads: int, out_dir: Path, category: str) -> tuple[Path, Path]:
    md, csv_path = out_dir / f"{category}.md", out_dir / f"{category}.csv"
    md.write_text(markdown(rows, threads), encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*asdict(rows[0]), "threads"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**asdict(r), "threads": threads})
    return md, csv_path


def log_run(rows: list[FormatRow], threads: int, category: str, reports: tuple[Path, Path]) -> str:
    """One MLflow run with every figure (``<format>.<figure>``) and the two tables."""
    import mlflow

    from pipelines import tracking

    mlflow.set_experiment(experiment_id=tracking.ensure_experiment(EXPERIMENT))
    with mlflow.start_run(run_name=f"formats-{category}") as run:
        mlflow.log_params({"category": category, "threads": threads})
        for r in rows:
            mlflow.log_metrics({f"{r.format}.{k}": float(v) for k, v in asdict(r).items() if k != "format"})
        for path in reports:
            mlflow.log_artifact(str(path))
        return run.info.run_id
