"""Prefect tasks around the stage functions (``pipelines.stages``): retries on I/O, no cache on training."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.params import PipelineParams
from pipelines.stages.runner import run_stage

IO_RETRIES = 2
IO_RETRY_DELAY_S = 5

# Stage functions read and write files and MLflow; they are never served from Prefect's cache.
_common: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": True}


def _run(name: str, category: str, params: PipelineParams, progress: bool) -> Any:
    return run_stage(name, category, params, progress=progress)


@task(name="data", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, **_common)
def data_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    return _run("data", category, params, progress)


@task(name="prepare", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, **_common)
def prepare_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    return _run("prepare", category, params, progress)


@task(name="train", **_common)
def train_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    return _run("train", category, params, progress)


@task(name="calibrate", **_common)
def calibrate_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    return _run("calibrate", category, params, progress)


@task(name="evaluate", **_common)
def evaluate_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    result = _run("evaluate", category, params, progress)
    create_markdown_artifact(
        key=artifact_key("metrics", category),
        markdown=metrics_markdown(category, result.summary),
        description=f"GLCF evaluation of {category}",
    )
    return result


@task(name="register", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, **_common)
def register_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    return _run("register", category, params, progress)


@task(name="promote", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, **_common)
def promote_task(category: str, params: PipelineParams, progress: bool = False) -> Any:
    result = _run("promote", category, params, progress)
    create_markdown_artifact(
        key=artifact_key("promotion-review", category),
        markdown=result.review_markdown,
        description=f"{result.model_name} v{result.challenger_version}: {result.reason}",
    )
    return result


#: every stage's task (``pipelines.flows.category`` orders them as ``pipelines.stages.STAGES``)
TASKS = {
    "data": data_task,
    "prepare": prepare_task,
    "train": train_task,
    "calibrate": calibrate_task,
    "evaluate": evaluate_task,
    "register": register_task,
    "promote": promote_task,
}


def artifact_key(kind: str, category: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() else "-" for c in category.lower()).strip("-")
    return f"glcf-{kind}-{cleaned}"


def metrics_markdown(category: str, summary: dict[str, float]) -> str:
    """The Prefect artifact of an evaluation: the headline figures (``pipelines.stages.evaluate.HEADLINE``)."""
    from pipelines.stages.evaluate import HEADLINE

    rows = [f"| {name} | {summary[name]:.4f} |" for name in HEADLINE.values() if summary.get(name) is not None]
    return "\n".join([f"# {category}: test metrics", "", "| metric | value |", "|---|---|", *rows]) + "\n"
