"""Peers in a benchmark: fit, evaluate with GLCF's metrics, log as a child MLflow run; GLCF's own throughput.

A peer job fits one peer on one category's prepared splits (the pipeline's manifest), calibrates a
threshold on the held-out normal images as the calibrate stage does, evaluates the test split with
:func:`glcf.evaluation.evaluate_predictions` into ``<paths.reports>/benchmark/peer-<name>/<category>``
and logs an MLflow run nested under the benchmark's parent run. Its result is a
:class:`pipelines.benchmark.plan.JobResult`, so peers land in the same comparison table as the variants.

:func:`glcf_throughput` times GLCF's inference the way the peers' is timed (pre-loaded test images,
one warm-up image, model and scoring in one pass), so the table compares like with like.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.params import CategoryPaths, PipelineParams, load_params
from pipelines.peers.models import INSTALL_HINT, PeerError, PeerResult, fit_and_score, torch_threads

logger = logging.getLogger(__name__)

PEER_DIR_PREFIX = "peer-"


@dataclass(frozen=True)
class PeerJob:
    """One (peer, category) pair of a benchmark.

    Attributes:
        peer: a key of :data:`pipelines.peers.PEERS`.
        category: a category of ``data.categories`` (prepared already).
        params_file: the base parameter file (its folder is the project root).
        benchmark_id: the parent run id; the peer's run is created as its child.
        threads: intra-op torch threads for the fit and the timed pass (None: torch's default).
    """

    peer: str
    category: str
    params_file: str
    benchmark_id: str
    threads: int | None = None


def check_peers_installed(peers: list[str]) -> None:
    """Fail fast, without importing anomalib, when peers are asked for and the extra is missing."""
    if peers and importlib.util.find_spec("anomalib") is None:
        msg = f"--peers {','.join(peers)}: anomalib is not installed: {INSTALL_HINT}"
        raise PeerError(msg)


def peer_report_dir(params: PipelineParams, peer: str, category: str) -> Path:
    from pipelines.benchmark.plan import BENCHMARK_DIR

    return params.root / params.paths.reports / BENCHMARK_DIR / f"{PEER_DIR_PREFIX}{peer}" / category


def _log_peer_run(
    job: PeerJob, params: PipelineParams, result: PeerResult, evaluation: Any, summary: dict[str, float], split: str
) -> str:
    import mlflow

    from pipelines import tracking
    from pipelines.peers.models import require_anomalib

    tracking.configure_tracking(params.root)
    experiment_id = tracking.ensure_experiment(params.experiment_name)
    commit, dirty = tracking.git_commit(params.root)
    tags = {
        "glcf.kind": "peer",
        "glcf.category": job.category,
        "glcf.variant": job.peer,
        "glcf.dataset": params.data.dataset_name,
        "glcf.test_split_hash": split,
        "mlflow.source.git.commit": commit,
        "glcf.git_dirty": str(dirty).lower(),
    }
    run_name = f"{job.category}/{job.peer}"
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, parent_run_id=job.benchmark_id, tags=tags
    ) as run:
        mlflow.log_params({**result.params(), "anomalib_version": require_anomalib(), "category": job.category})
        tracking.log_flat_metrics(summary)
        mlflow.log_metrics({"fit_seconds": result.fit_seconds, "images_per_second": result.images_per_second})
        mlflow.log_artifact(str(evaluation.metrics_path), "evaluation")
        mlflow.log_artifact(str(evaluation.csv_path), "evaluation")
        tracking.log_dir(evaluation.metrics_path.parent / "plots", "evaluation/plots")
        return run.info.run_id


def run_peer_job(job: PeerJob) -> Any:
    """Fit, evaluate and log one peer on one category; returns a :class:`pipelines.benchmark.plan.JobResult`."""
    from glcf.evaluation import evaluate_predictions
    from glcf.metrics import calibrate_threshold
    from pipelines.benchmark.plan import JobResult
    from pipelines.io import write_json
    from pipelines.stages.common import load_prepared, numeric_summary

    params = load_params(job.params_file)
    paths = params.category_paths(job.category)
    data, manifest = load_prepared(params, paths)
    encoder = params.glcf.encoder
    result = fit_and_score(
        job.peer,
        data,
        params.glcf.image_size,
        backbone=encoder.name,
        weights=encoder.weights,
        batch_size=params.evaluate.batch_size,
        seed=params.glcf.train.seed,
        threads=job.threads,
        device=params.glcf.train.device,
    )
    cal = params.calibrate.threshold
    threshold = None
    if len(result.validation_scores):
        threshold = calibrate_threshold(result.validation_scores, cal.method, quantile=cal.quantile, k=cal.k)
    out = peer_report_dir(params, job.peer, job.category)
    evaluation = evaluate_predictions(
        data,
        result.image_scores,
        result.anomaly_maps,
        out,
        threshold=threshold,
        score_name=f"anomalib {job.peer} image score",
        spro_limits=params.evaluate.max_fpr_limits,
        gallery_size=params.evaluate.gallery_size,
    )
    summary = numeric_summary(evaluation.metrics)
    record = result.params() | {
        "fit_seconds": result.fit_seconds,
        "images_per_second": result.images_per_second,
    }
    write_json(out / "peer.json", record)
    run_id = _log_peer_run(job, params, result, evaluation, summary, manifest["hashes"]["test"])
    return JobResult(
        job.peer,
        job.category,
        run_id,
        summary,
        result.fit_seconds,
        images_per_second=result.images_per_second,
        image_size=result.image_size,
        note=result.layer_text(),
        kind="peer",
    )


def glcf_throughput(params: PipelineParams, paths: CategoryPaths, threads: int | None = None) -> float:
    """Test images per second of the trained, calibrated GLCF model of ``paths`` (timed like the peers)."""
    import torch

    from glcf.data.dataset import ImageDataset
    from glcf.runtime import resolve_device
    from glcf.scoring import AnomalyScorer
    from glcf.stats import NormStats
    from pipelines.io import read_json
    from pipelines.stages.calibrate import load_model
    from pipelines.stages.common import load_prepared

    data, _ = load_prepared(params, paths)
    if not data.test:
        return float("nan")
    model = load_model(params, paths)
    stats = NormStats.from_dict(read_json(paths.calibration, "calibration")["norm_stats"])
    size = model.config.image_size
    scorer = AnomalyScorer(params.glcf.scoring, stats, size)
    dataset = ImageDataset(data.test, size, model.mean, model.std)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    dev = resolve_device(params.glcf.train.device)
    bs = params.evaluate.batch_size
    model.to(dev).eval()

    def run(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            for start in range(0, len(batch), bs):
                scorer(model(batch[start : start + bs].to(dev)))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    with torch_threads(threads):
        run(images[:1])
        t0 = time.perf_counter()
        run(images)
        elapsed = time.perf_counter() - t0
    return round(len(images) / elapsed, 2) if elapsed > 0 else float("nan")
