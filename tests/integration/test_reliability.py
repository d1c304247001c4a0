"""Reliability and security on the local stack: S3 outage at the start of a run, a training killed mid-epoch,
and no credential in logs, MLflow params or tags.

S3 outage: the project's DVC remote is reached through a TCP proxy in front of the stack's S3 server; stopping
the proxy takes S3 away (the objects stay, as in a network outage). A category flow with ``dvc_pull=True`` (what
a scheduled retraining runs) then retries its ``dvc-pull`` task and fails with the endpoint in its message,
before anything reaches MLflow; with the proxy back, the same command succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pipeline_project import TinyProject
from servers import LocalStack
from stack_project import (
    TcpProxy,
    drop_local_data,
    prefect_client,
    registry_state,
    secrets_of,
    stack_mlflow,
    stack_project,
    stage_result,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATEGORY = "pushpins"

# The category flow as a scheduled retraining runs it, tagged so that the test finds its flow run.
FLOW = """
import sys
from pipelines.prefect_env import apply_prefect_defaults
apply_prefect_defaults()
from pipelines.logs import setup_logging
setup_logging()
from prefect import tags
from pipelines.flows.category import category_flow
with tags(sys.argv[1]):
    category_flow("pushpins", "params.yaml", dvc_pull=True)
"""


@dataclass
class Attempt:
    """One run of the category flow: its process and its Prefect flow and task runs."""

    returncode: int
    output: str
    flow_run: Any
    task_runs: dict[str, Any]
    logs: str
    seconds: float


@dataclass
class Outage:
    project: TinyProject
    proxy: TcpProxy
    failed: Attempt
    registry_after_failure: tuple[Any, ...]
    experiment_after_failure: Any
    model_dir_after_failure: bool
    rerun: Attempt
    timings: dict[str, float] = field(default_factory=dict)


def run_flow(project: TinyProject, api: str) -> Attempt:
    tag = f"glcf-test-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    proc = project.run("python", "-c", FLOW, tag, check=False, timeout=900)
    seconds = round(time.monotonic() - t0, 1)
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterTags,
        LogFilter,
        LogFilterFlowRunId,
    )

    with prefect_client(api) as client:
        (flow_run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])), limit=200)
    return Attempt(
        proc.returncode,
        proc.stdout + proc.stderr,
        flow_run,
        {t.name.rsplit("-", 1)[0]: t for t in tasks},
        "\n".join(f"{log.level} {log.message}" for log in logs),
        seconds,
    )


@pytest.fixture(scope="module")
def outage(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    proxy = TcpProxy(local_stack.s3_endpoint)
    proxy.start()
    try:
        project = stack_project(tmp_path_factory.mktemp("outage"), local_stack, "rel", s3_endpoint=proxy.url)
        drop_local_data(project, CATEGORY)
        proxy.stop()  # S3 down at the start of the run
        failed = run_flow(project, local_stack.prefect_api_url)
        registry = registry_state(project, f"rel-{CATEGORY}")
        with stack_mlflow(project) as client:
            experiment = client.get_experiment_by_name("rel/synthetic-loco")
        model_dir = (project.root / "models" / CATEGORY).exists()
        proxy.start()  # S3 is back
        rerun = run_flow(project, local_stack.prefect_api_url)
        print(f"\noutage: failed run {failed.seconds} s, rerun {rerun.seconds} s")
        yield Outage(project, proxy, failed, registry, experiment, model_dir, rerun)
    finally:
        proxy.stop()


def test_s3_outage_retries_then_fails_naming_the_endpoint(outage: Outage) -> None:
    failed = outage.failed
    assert failed.returncode != 0
    assert failed.flow_run.state.is_failed()
    pull = failed.task_runs["dvc-pull"]
    assert pull.state.is_failed()
    assert pull.run_count == 3  # the first attempt and IO_RETRIES = 2 retries
    assert failed.logs.count("Retry ") == 2, failed.logs[-3000:]
    message = pull.state.message or ""
    assert "dvc pull data@pushpins failed" in message
    assert f'Could not connect to the endpoint URL: "{outage.proxy.url}/' in message
    assert outage.proxy.url in (failed.flow_run.state.message or "") + failed.output
    assert set(failed.task_runs) == {"dvc-pull"}  # no stage ran after the failed pull


def test_s3_outage_leaves_no_registry_entry_or_run(outage: Outage) -> None:
    assert outage.registry_after_failure == ([], {}, {})
    assert outage.experiment_after_failure is None  # nothing reached MLflow
    assert not outage.model_dir_after_failure


def test_rerun_succeeds_once_s3_is_back(outage: Outage) -> None:
    rerun = outage.rerun
    assert rerun.returncode == 0, rerun.output[-3000:]
    assert rerun.flow_run.state.is_completed()
    assert rerun.task_runs["dvc-pull"].run_count == 1
    versions, aliases, _ = registry_state(outage.project, f"rel-{CATEGORY}")
    assert versions == ["1"]
    assert aliases["challenger"] == "1"


@dataclass
class Killed:
    project: TinyProject
    epochs: int
    completed_at_kill: int
    seen_before_kill: int
    first_output: str
    resumed: dict[str, Any]
    resumed_output: str


def checkpoint_epoch(resume_root: Path) -> tuple[int, float] | None:
    """Completed epochs and the last epoch's seconds of the train stage's resume checkpoint, if any."""
    from glcf.model.checkpoint import read_checkpoint

    found = sorted(resume_root.glob("*/last.pt"))
    if not found:
        return None
    data = read_checkpoint(found[0])
    return int(data["epoch"]), float(data["history"][-1]["seconds"])


@pytest.fixture(scope="module")
def killed(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    epochs = 5
    overrides = {
        "data.generator": {
            "seed": 0,
            "image_size": [128, 96],
            "counts": {"train": 40, "validation": 4, "test_good": 4, "test_logical": 3, "test_structural": 3},
        },
        "train.epochs": epochs,
    }
    project = stack_project(tmp_path_factory.mktemp("killed"), local_stack, "kill", overrides=overrides)
    project.run("glcf", "stage", "prepare", CATEGORY)
    log_path = project.root / "train-killed.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["glcf", "stage", "train", CATEGORY],
            cwd=project.root,
            env=project.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        resume_root = project.root / ".run" / "train" / CATEGORY
        deadline = time.monotonic() + 600
        seen = None
        while seen is None and proc.poll() is None and time.monotonic() < deadline:
            seen = checkpoint_epoch(resume_root)
            time.sleep(0.05)
        assert seen is not None, log_path.read_text()[-3000:]
        time.sleep(0.3 * seen[1])  # into the next epoch
        os.killpg(proc.pid, signal.SIGKILL)  # the stage's own session (started above)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    after = checkpoint_epoch(resume_root)
    assert after is not None
    resumed = project.run("glcf", "stage", "train", CATEGORY, "--json", timeout=900)
    details = (project.root / ".run" / "logs" / f"train@{CATEGORY}.log").read_text()  # every module's INFO lines
    output = resumed.stderr + details
    return Killed(project, epochs, after[0], seen[0], log_path.read_text(), stage_result(resumed.stdout), output)


def test_killed_training_resumes_from_its_last_checkpoint(killed: Killed) -> None:
    assert 1 <= killed.seen_before_kill <= killed.completed_at_kill < killed.epochs
    print(f"\nkilled after {killed.completed_at_kill} of {killed.epochs} epochs")
    assert killed.resumed["resumed_from_epoch"] == killed.completed_at_kill
    assert killed.resumed["epochs"] == killed.epochs
    assert f"after epoch {killed.completed_at_kill}" in killed.resumed_output  # the engine's resume log line
    history = (killed.project.root / "models" / CATEGORY / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == [str(e) for e in range(1, killed.epochs + 1)]
    assert not any((killed.project.root / ".run" / "train" / CATEGORY).glob("*/last.pt"))  # cleaned up
    with stack_mlflow(killed.project) as client:
        run = client.get_run(killed.resumed["run_id"])
        assert run.data.tags["glcf.resumed"] == "true"
        assert run.data.tags["glcf.train_id"] == killed.resumed["train_id"]  # the killed run, continued
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train.loss")]
        assert sorted(steps) == list(range(1, killed.epochs + 1))


def test_no_credential_in_logs_params_or_tags(outage: Outage, killed: Killed) -> None:
    texts = {
        "failed flow output": outage.failed.output,
        "failed flow-run logs": outage.failed.logs,
        "failed flow-run state": str(outage.failed.flow_run.state.message),
        "rerun output": outage.rerun.output,
        "rerun flow-run logs": outage.rerun.logs,
        "killed training output": killed.first_output,
        "resumed training output": killed.resumed_output,
        ".dvc/config": (outage.project.root / ".dvc" / "config").read_text(),
    }
    for project, prefix in ((outage.project, "rel"), (killed.project, "kill")):
        with stack_mlflow(project) as client:
            experiment = client.get_experiment_by_name(f"{prefix}/synthetic-loco")
            runs = client.search_runs([experiment.experiment_id])
            assert runs
            for run in runs:
                texts[f"{prefix} run {run.info.run_id} params"] = json.dumps(run.data.params)
                texts[f"{prefix} run {run.info.run_id} tags"] = json.dumps(run.data.tags)
            for mv in client.search_model_versions(f"name = '{prefix}-{CATEGORY}'"):
                texts[f"{prefix} model version {mv.version}"] = json.dumps({"tags": mv.tags, "source": mv.source})
    secrets = secrets_of(outage.project)
    assert all(len(v) >= 12 for v in secrets.values())
    leaks = [(name, where) for where, text in texts.items() for name, value in secrets.items() if value in text]
    assert leaks == []
