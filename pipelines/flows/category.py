"""The per-category flow (prepare, train, calibrate, evaluate, register, promote) and the parent flow."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.flows import tasks as T
from pipelines.flows.review import await_review
from pipelines.params import load_params
from pipelines.stages import STAGES

#: the Prefect task of every stage, in the registry's order (a stage without a task fails here, at import)
STAGE_TASKS = {name: T.TASKS[name] for name in STAGES}


@flow(name="glcf-category", log_prints=True, persist_result=True)
def category_flow(
    category: str,
    params_file: str = "params.yaml",
    stages: list[str] | None = None,
    dvc_pull: bool = False,
    dvc_commit: bool = False,
) -> dict[str, Any]:
    """Run one category from data to the promotion review.

    Args:
        category: a category of ``data.categories``.
        params_file: the parameter file (its folder is the project root).
        stages: a subset of the stages, in pipeline order (default: all).
        dvc_pull: run ``dvc pull`` for the category's data first (scheduled retraining).
        dvc_commit: afterwards record the category's outputs in ``dvc.lock`` (scheduled retraining;
            the parent flow commits all categories at once instead).
    """
    log = get_run_logger()
    params = load_params(params_file)
    order = list(STAGE_TASKS)
    chosen = order if stages is None else [s for s in order if s in stages]
    unknown = sorted(set(stages or []) - set(order))
    if unknown:
        msg = f"stages: unknown stage(s) {unknown} (stages: {', '.join(order)})"
        raise ValueError(msg)
    if dvc_pull:
        dvc_pull_task(category, params_file)
    root = Path(params_file).resolve().parent
    before = inputs_fingerprint(root, params_file) if dvc_commit else ""
    results: dict[str, Any] = {}
    for name in chosen:
        log.info("%s: stage %s", category, name)
        results[name] = STAGE_TASKS[name](category, params)
    if "promote" in results:
        results["review"] = await_review(results["promote"], params)  # pauses for a person (manual approval)
    if dvc_commit and stages is None:
        commit_if_unchanged(root, params_file, before, [f"{stage}@{category}" for stage in STAGE_TASKS])
    return results


def inputs_fingerprint(root: Path, params_file: str) -> str:
    """A hash of what the stages ran besides their data: the params file, ``dvc.yaml`` and every file of the
    code folders that ``dvc.yaml``'s stages depend on (the deps without a ``${...}`` path)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    folders = sorted({d for s in stages.values() for d in s["do"].get("deps", []) if "${" not in d})
    files = [Path(params_file).resolve(), root / "dvc.yaml"]
    for folder in folders:
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def commit_if_unchanged(root: Path, params_file: str, before: str, targets: list[str]) -> bool:
    """``dvc commit`` the flow's outputs only if its code and parameters are still those it ran with.

    ``dvc commit`` hashes what is on disk now: had the code or the parameters changed during the run,
    ``dvc.lock`` would record outputs that they did not produce. Returns whether it committed.
    """
    if inputs_fingerprint(root, params_file) != before:
        get_run_logger().warning(
            "the code or the parameters changed while the flow ran: dvc.lock left as it was (run dvc repro)"
        )
        return False
    dvc_commit_task(root, targets)
    return True


@task(name="dvc-commit", retries=T.IO_RETRIES, retry_delay_seconds=T.IO_RETRY_DELAY_S, cache_policy=NO_CACHE)
def dvc_commit_task(root: Path, targets: list[str]) -> None:
    """``dvc commit --force`` the stages so ``dvc status`` agrees with the flow (retried: DVC's repo lock)."""
    if (root / "dvc.yaml").exists():
        run_checked(["dvc", "commit", "--force", *targets], cwd=root)


@task(name="dvc-pull", retries=T.IO_RETRIES, retry_delay_seconds=T.IO_RETRY_DELAY_S, cache_policy=NO_CACHE)
def dvc_pull_task(category: str, params_file: str) -> None:
    params = load_params(params_file)
    paths = params.category_paths(category)
    target = f"data@{category}"
    run_checked(["dvc", "pull", target], cwd=paths.root)


def run_checked(cmd: list[str], cwd: Path) -> str:
    """Run a tool, log its stderr, and raise with it on failure."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed with exit code {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    return proc.stdout


@task(name="category", cache_policy=NO_CACHE)
def category_task(category: str, params_file: str, stages: list[str] | None) -> dict[str, Any]:
    """A category flow as a task, so the parent flow can fan categories out on its task runner."""
    return category_flow(category, params_file, stages)


def summary_markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# GLCF pipeline run",
        "",
        "| category | image AUROC total | logical | structural | pixel AUROC | sPRO@0.05 | version | champion |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for category, res in sorted(results.items()):
        s = getattr(res.get("evaluate"), "summary", {}) or {}
        reg, promo = res.get("register"), res.get("promote")

        def f(name: str, s: dict = s) -> str:
            return "–" if s.get(name) is None else f"{s[name]:.3f}"

        lines.append(
            f"| {category} | {f('image_auroc_total')} | {f('image_auroc_logical_anomalies')} | "
            f"{f('image_auroc_structural_anomalies')} | {f('pixel_auroc')} | {f('spro_0.05_mean')} | "
            f"{getattr(reg, 'version', '–')} | {_champion_cell(promo, res.get('review'))} |"
        )
    return "\n".join(lines) + "\n"


def _champion_cell(promo: Any, review: str | None) -> str:
    if review in ("approved", "promoted") or (review is None and getattr(promo, "promoted", False)):
        return "promoted"
    return "kept (review pending)" if review == "pending" else "kept"


@flow(name="glcf-pipeline", log_prints=True, persist_result=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def pipeline_flow(
    categories: list[str] | None = None,
    params_file: str = "params.yaml",
    stages: list[str] | None = None,
    dvc_commit: bool = True,
) -> dict[str, dict[str, Any]]:
    """Fan the categories out on the flow's task runner (threads by default; see :func:`run_pipeline`).

    Args:
        categories: default ``data.categories``.
        params_file: the parameter file.
        stages: a subset of the stages (default: all).
        dvc_commit: record the outputs in ``dvc.lock`` afterwards (``dvc commit``), so that
            ``dvc status`` and ``dvc repro`` agree with what the flow produced.
    """
    params_file = str(Path(params_file).resolve())  # workers of a cluster may start elsewhere
    params = load_params(params_file)
    chosen = list(categories or params.data.categories)
    for c in chosen:
        params.category_paths(c)  # an unknown category fails before any work starts
    root = Path(params_file).parent
    before = inputs_fingerprint(root, params_file) if dvc_commit else ""
    futures = {c: category_task.submit(c, params_file, stages) for c in chosen}
    results = {c: f.result() for c, f in futures.items()}
    create_markdown_artifact(key="glcf-pipeline-summary", markdown=summary_markdown(results))
    if dvc_commit and stages is None:
        commit_if_unchanged(root, params_file, before, [f"{stage}@{c}" for c in chosen for stage in STAGE_TASKS])
    return results


def task_runner(kind: str = "threads", max_workers: int = 1, dask_address: str | None = None) -> Any:
    """The parent flow's task runner: categories run side by side on it.

    Args:
        kind: ``threads`` (one process), ``dask`` (prefect-dask) or ``ray`` (prefect-ray, the ``ray`` extra).
        max_workers: threads, or workers of a local Dask cluster / CPUs of a local Ray instance.
        dask_address: scheduler of a running Dask cluster; default ``GLCF_DASK_ADDRESS``, else a local
            cluster of ``max_workers`` processes. A Ray cluster comes from ``GLCF_RAY_ADDRESS``.
    """
    from pipelines.settings import get_settings

    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=max(1, max_workers))
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        address = dask_address or get_settings().glcf_dask_address
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, max_workers), "threads_per_worker": 1})
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            msg = "task runner 'ray' needs the ray extra: uv sync --extra ray (or pip install 'glcf[ray]')"
            raise ValueError(msg) from None
        address = get_settings().glcf_ray_address
        if address:
            return RayTaskRunner(address=address)
        return RayTaskRunner(init_kwargs={"num_cpus": max(1, max_workers), "include_dashboard": False})
    msg = f"task runner must be threads, dask or ray, got {kind!r}"
    raise ValueError(msg)


def run_pipeline(
    categories: list[str] | None = None,
    params_file: str = "params.yaml",
    *,
    stages: list[str] | None = None,
    runner: str = "threads",
    max_workers: int = 1,
    dask_address: str | None = None,
    dvc_commit: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the parent flow with the chosen task runner.

    ``max_workers`` categories share the cores: each stage runs with its part of torch's threads
    (``GLCF_THREADS`` overrides; workers of a cluster given by address use their own environment).
    """
    from pipelines.settings import threads_shared_by

    chosen = pipeline_flow.with_options(task_runner=task_runner(runner, max_workers, dask_address))
    with threads_shared_by(max(1, max_workers)):
        return chosen(categories=categories, params_file=params_file, stages=stages, dvc_commit=dvc_commit)
