"""Scheduled retraining: one Prefect deployment per product category (docs/operations.md, Scheduled retraining).

``glcf deploy`` registers, for every category of ``data.categories``, the deployment
``glcf-category/retrain-<category>`` of :func:`pipelines.flows.category.category_flow` with

* one cron schedule (``schedule.cron``, a per-category ``schedule.crons`` entry, or ``--cron``), in a time zone;
* the parameters ``category``, ``params_file`` (relative to the project folder), ``dvc_pull=True`` and
  ``dvc_commit=True``: a run pulls
  the category's data (``dvc pull data@<category>``), runs its stages, registers a ``@challenger`` and runs the
  promotion review;
* the project folder as its source (``flow.from_source(<folder>, "pipelines.flows.category.category_flow")``):
  Prefect stores a ``set_working_directory`` pull step, so a process worker on this machine runs the flow in the
  project folder with no git clone. Workers elsewhere need the folder at the same path (or a ``git_clone`` pull
  step in their own deployment);
* a deployment concurrency limit of 1 (two runs of one category would write the same files);
* a work pool of type ``process``: the CPU pool (``GLCF_CPU_POOL``), or with ``--gpu`` the GPU pool
  (``GLCF_GPU_POOL``) whose concurrency limit is the number of GPUs (``GLCF_GPU_COUNT``): one run per GPU.
  Pools are created when missing; an existing pool keeps its job template and only gets the limit.

Everything is Prefect's own machinery (``Flow.from_source``, ``RunnerDeployment.apply``, work pools, cron
schedules); this module only derives the per-category settings from ``params.yaml`` and the environment.

``params.yaml`` may hold a ``schedule`` section (:class:`pipelines.params.ScheduleParams`; defaults when absent,
the command line overrides it)::

    schedule:
      cron: "0 2 * * *"      # every category, unless crons names it
      timezone: UTC
      crons: {}              # per category, e.g. {pushpins: "30 2 * * 1"}
      gpu: false             # true: deploy to the GPU pool
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.params import ParamsError, PipelineParams, ScheduleParams, load_params

logger = logging.getLogger(__name__)

__all__ = [
    "DEPLOYMENT_PREFIX",
    "ENTRYPOINT",
    "DeploymentSpec",
    "ScheduleParams",
    "apply_deployments",
    "ensure_work_pool",
    "load_schedule",
    "plan_deployments",
]

ENTRYPOINT = "pipelines.flows.category.category_flow"  # module path: the installed package, run in the project
FLOW_NAME = "glcf-category"
DEPLOYMENT_PREFIX = "retrain-"


def load_schedule(params_file: str | Path) -> tuple[PipelineParams, ScheduleParams]:
    """Read ``params_file``: the pipeline parameters and its ``schedule`` section (defaults when absent),
    its cron expressions checked by Prefect's parser.

    Raises:
        ValueError: naming the file and the dotted key.
    """
    try:
        params = load_params(Path(params_file), check_crons=True)
    except ParamsError as exc:
        raise ValueError(str(exc)) from None
    return params, params.schedule


@dataclass(frozen=True)
class DeploymentSpec:
    """One category's scheduled retraining, as it will be registered."""

    category: str
    name: str
    cron: str
    timezone: str
    work_pool: str
    project_root: Path
    parameters: dict[str, Any]
    tags: tuple[str, ...]

    @property
    def full_name(self) -> str:
        """``flow/deployment``, as ``prefect deployment run`` takes it."""
        return f"{FLOW_NAME}/{self.name}"


def plan_deployments(
    params_file: str | Path = "params.yaml",
    *,
    categories: Sequence[str] | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    gpu: bool | None = None,
    work_pool: str | None = None,
) -> list[DeploymentSpec]:
    """The deployments ``glcf deploy`` registers (nothing is contacted).

    Args:
        params_file: the project's parameter file; its folder is the project folder the runs use.
        categories: a subset of ``data.categories`` (default: all).
        cron: one cron expression for every chosen category (overrides ``schedule``).
        timezone: the time zone of the crons (overrides ``schedule.timezone``).
        gpu: deploy to the GPU pool (overrides ``schedule.gpu``).
        work_pool: an explicit pool name (default ``GLCF_GPU_POOL`` or ``GLCF_CPU_POOL``).

    Raises:
        ValueError: a bad file, category, cron or time zone (naming it).
    """
    from pipelines.settings import get_settings

    path = Path(params_file)
    params, schedule = load_schedule(path)
    schedule = schedule.override(cron=cron, timezone=timezone, gpu=gpu)
    chosen = list(categories or params.data.categories)
    for c in chosen:
        params.category_paths(c)  # unknown categories fail here, naming data.categories
    settings = get_settings()
    pool = work_pool or (settings.glcf_gpu_pool if schedule.gpu else settings.glcf_cpu_pool)
    root = path.resolve().parent
    return [
        DeploymentSpec(
            category=c,
            name=f"{DEPLOYMENT_PREFIX}{c}",
            cron=schedule.crons.get(c, schedule.cron),
            timezone=schedule.timezone,
            work_pool=pool,
            project_root=root,
            parameters={"category": c, "params_file": path.name, "dvc_pull": True, "dvc_commit": True},
            tags=("glcf", "retrain", f"category:{c}", "gpu" if schedule.gpu else "cpu"),
        )
        for c in chosen
    ]


def ensure_work_pool(name: str, concurrency_limit: int | None = None) -> dict[str, Any]:
    """Create the ``process`` work pool ``name`` when missing; set its concurrency limit when given.

    An existing pool keeps its type and base job template (an operator may have edited it).

    Returns:
        ``{"name", "type", "concurrency_limit", "created"}``.
    """
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pool = client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    concurrency_limit=concurrency_limit,
                    description="GLCF scheduled retraining (glcf deploy)",
                )
            )
            logger.info("created work pool %s (process, concurrency limit %s)", name, concurrency_limit)
            return {"name": name, "type": pool.type, "concurrency_limit": pool.concurrency_limit, "created": True}
        if concurrency_limit is not None and pool.concurrency_limit != concurrency_limit:
            client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency_limit))
            logger.info("work pool %s: concurrency limit %s -> %s", name, pool.concurrency_limit, concurrency_limit)
        limit = concurrency_limit if concurrency_limit is not None else pool.concurrency_limit
        return {"name": name, "type": pool.type, "concurrency_limit": limit, "created": False}


def apply_deployments(
    specs: Sequence[DeploymentSpec], *, pool_limit: int | None = None, paused: bool = False
) -> dict[str, str]:
    """Create or update the deployments (and their work pool) on the Prefect API.

    Args:
        specs: from :func:`plan_deployments` (one work pool for all).
        pool_limit: the pool's concurrency limit (the GPU count for the GPU pool; None leaves it).
        paused: register the schedules paused.

    Returns:
        ``{full deployment name: deployment id}``.
    """
    from prefect import flow
    from prefect.client.schemas.schedules import CronSchedule

    if not specs:
        return {}
    pools = {s.work_pool for s in specs}
    if len(pools) != 1:
        msg = f"all deployments must use one work pool, got {sorted(pools)}"
        raise ValueError(msg)
    ensure_work_pool(specs[0].work_pool, pool_limit)
    ids: dict[str, str] = {}
    for spec in specs:
        source = flow.from_source(source=str(spec.project_root), entrypoint=ENTRYPOINT)
        deployment = source.to_deployment(
            name=spec.name,
            schedules=[CronSchedule(cron=spec.cron, timezone=spec.timezone)],
            parameters=spec.parameters,
            work_pool_name=spec.work_pool,
            concurrency_limit=1,
            paused=paused,
            tags=list(spec.tags),
            description=f"Scheduled GLCF retraining of {spec.category!r}: dvc pull, stages, register, promotion review",
        )
        ids[spec.full_name] = str(deployment.apply())
        logger.info("deployment %s: cron %r (%s) on pool %s", spec.full_name, spec.cron, spec.timezone, spec.work_pool)
    return ids
