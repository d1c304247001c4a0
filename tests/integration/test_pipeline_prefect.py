"""The Prefect flows on copies of the tiny project: against a real ``prefect server`` and in local mode.

Against the server, a second training with a gate it cannot pass: the flow and task runs complete,
the metrics and promotion-review artifacts are on the server, version 2 is registered and rejected
with its reason, and the champion stays version 1. In local mode, a changed test split: the champion
is re-evaluated on the challenger's split before the gate (its re-measured AUROC checked here
independently). Also the benchmark flow on the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_project import BIN, CATEGORY, TINY, TinyProject, clean_env, shared_tiny_project
from servers import free_port

from pipelines.stages import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = f"glcf-{CATEGORY}"


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME; yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = clean_env(home, PREFECT_UI_ENABLED="false")
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                tail = (home / "server.log").read_text()[-3000:]
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{tail}")
            try:
                with opener.open(f"{api}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("prefect server did not answer /api/health in 180 s")
                time.sleep(0.5)
        yield api
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (started above)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def prefect_client(api: str) -> Any:
    from pipelines.prefect_env import apply_prefect_defaults

    apply_prefect_defaults()
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api)


def flow_runs(client: Any, flow_name: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def task_runs(client: Any, flow_run_ids: list[Any]) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))


def artifact(client: Any, key: str) -> Any:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no Prefect artifact {key!r}"
    return found[-1]


def test_pipeline_flow_on_a_prefect_server_keeps_the_champion(
    tiny_project: TinyProject, prefect_api: str, tmp_path: Path
) -> None:
    project = tiny_project.clone(tmp_path / "project")
    project.set_params({"train.epochs": 1, "register.min_improvement": 1.0})  # a gate no challenger passes
    proc = project.timed("flow_server", "glcf", "flow", PREFECT_API_URL=prefect_api)
    assert f"{CATEGORY}: rejected:" in proc.stdout

    with prefect_client(prefect_api) as client:
        (pipeline,) = flow_runs(client, "glcf-pipeline")
        (category,) = flow_runs(client, "glcf-category")
        assert pipeline.state.is_completed()
        assert category.state.is_completed()
        assert category.parent_task_run_id is not None  # the category flow ran inside the parent's task
        tasks = task_runs(client, [pipeline.id, category.id])
        names = {t.name.rsplit("-", 1)[0] for t in tasks}
        assert set(STAGES) <= names
        assert all(t.state.is_completed() for t in tasks)
        metrics_md = artifact(client, f"glcf-metrics-{CATEGORY}").data
        review_md = artifact(client, f"glcf-promotion-review-{CATEGORY}").data
        summary_md = artifact(client, "glcf-pipeline-summary").data

    metrics = json.loads((project.root / "reports" / CATEGORY / "metrics.json").read_text())["summary"]
    assert f"| image_auroc_total | {metrics['image_auroc_total']:.4f} |" in metrics_md
    assert review_md.startswith(f"# Promotion review: {MODEL} v2")
    assert "**Decision: REJECTED**" in review_md
    assert "margin 1.0000" in review_md
    assert f"| {CATEGORY} |" in summary_md
    assert "| 2 | kept |" in summary_md

    # the registry: v2 registered and rejected with its reason, v1 still the champion
    assert project.registry_state(MODEL) == (["1", "2"], {"challenger": "2", "champion": "1"})
    tags = project.client().get_model_version(MODEL, "2").tags
    assert tags["glcf.promotion.decision"] == "rejected"
    assert "improve image_auroc_total" in tags["glcf.promotion.reason"]
    assert tags["glcf.promotion.champion_version"] == "1"
    promotion = json.loads((project.root / "reports" / CATEGORY / "promotion.json").read_text())
    assert promotion["promoted"] is False
    assert promotion["champion_version_after"] == "1"
    assert not promotion["champion_remeasured"]  # same split: the champion's tags are compared
    assert (project.root / "reports" / CATEGORY / "review.md").read_text() == review_md
    run_id = json.loads((project.root / "reports" / CATEGORY / "registration.json").read_text())["run_id"]
    logged = {a.path for a in project.client().list_artifacts(run_id, "promotion")}
    assert {"promotion/review.md", "promotion/decision.json"} <= logged
    # the flow recorded its outputs in dvc.lock: DVC agrees that nothing is stale
    assert json.loads(project.run("dvc", "status", "--json").stdout) == {f"data@{CATEGORY}": ["always changed"]}
    # the original project is untouched
    assert tiny_project.registry_state(MODEL) == (["1"], {"challenger": "1", "champion": "1"})


def _auroc_of_version(project: TinyProject, version: str, dst: Path) -> float:
    """Image AUROC of a registered version on the project's current test split, computed here."""
    from sklearn.metrics import roc_auc_score

    from glcf.inference.detector import Detector

    detector = Detector(project.download_model(MODEL, version, dst) / "artifacts" / "bundle.pt")
    test = project.root / "data" / "raw" / CATEGORY / "test"
    files = sorted(test.glob("*/*.png"))
    labels = [0 if f.parent.name == "good" else 1 for f in files]
    scores = [d.score for d in detector.score(files)]
    return float(roc_auc_score(labels, scores))


def test_pipeline_flow_in_local_mode_reevaluates_the_champion(tiny_project: TinyProject, tmp_path: Path) -> None:
    project = tiny_project.clone(tmp_path / "project")
    counts = dict(TINY["data.generator"]["counts"], test_good=6)  # a different test split
    project.set_params({"data.generator": dict(TINY["data.generator"], counts=counts)})
    proc = project.timed("flow_local", "glcf", "flow", "--no-dvc-commit")
    assert f"{CATEGORY}: " in proc.stdout
    assert len(list((project.root / "data" / "raw" / CATEGORY / "test" / "good").glob("*.png"))) == 6

    promotion = json.loads((project.root / "reports" / CATEGORY / "promotion.json").read_text())
    assert promotion["challenger_version"] == "2"
    assert promotion["champion_version_before"] == "1"
    assert promotion["champion_remeasured"] is True
    review = (project.root / "reports" / CATEGORY / "review.md").read_text()
    assert "The champion was re-evaluated on this split" in review
    client = project.client()
    tags = client.get_model_version(MODEL, "2").tags
    remeasured = json.loads(tags["glcf.promotion.champion_metrics"])
    old = client.get_model_version(MODEL, "1").tags
    assert old["glcf.test_split_hash"] != tags["glcf.test_split_hash"]
    assert remeasured["image_auroc_total"] == pytest.approx(_auroc_of_version(project, "1", tmp_path / "v1"), abs=1e-6)
    champion = "2" if promotion["promoted"] else "1"
    assert project.registry_state(MODEL) == (["1", "2"], {"challenger": "2", "champion": champion})
    assert tags["glcf.promotion.decision"] == ("promoted" if promotion["promoted"] else "rejected")


def test_benchmark_flow_on_a_prefect_server(tiny_project: TinyProject, prefect_api: str, tmp_path: Path) -> None:
    project = tiny_project.clone(tmp_path / "project")
    proc = project.timed(
        "benchmark_flow",
        "glcf", "benchmark", "--prefect", "--variants", "pss,correspondence", "--epochs", "1",
        PREFECT_API_URL=prefect_api,
    )  # fmt: skip
    assert "| correspondence | pushpins |" in proc.stdout
    with prefect_client(prefect_api) as client:
        (run,) = flow_runs(client, "glcf-benchmark")
        assert run.state.is_completed()
        tasks = {t.name: t for t in task_runs(client, [run.id])}
        assert set(tasks) == {f"pss@{CATEGORY}", f"correspondence@{CATEGORY}"}
        assert all(t.state.is_completed() for t in tasks.values())
        table = artifact(client, "glcf-benchmark").data
    rows = json.loads((project.root / "reports" / "benchmark" / "benchmark.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["pss", "correspondence"]
    assert rows[1]["checkpoint_from"] == "pss"
    for row in rows:
        assert f"| {row['variant']} | {CATEGORY} |" in table


def _paused_review(client: Any, proc: subprocess.Popen, deadline_s: float = 240) -> Any:
    """The ``glcf-review`` flow run once it is Paused (fails if the flow process ends first)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        paused = [r for r in flow_runs(client, "glcf-review") if r.state and r.state.is_paused()]
        if paused:
            return paused[0]
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"glcf flow ended before pausing ({proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}")
        time.sleep(1)
    pytest.fail(f"no paused glcf-review flow run within {deadline_s} s")


def test_manual_review_pauses_the_flow_run_until_resumed_with_input(
    tiny_project: TinyProject, prefect_api: str, tmp_path: Path
) -> None:
    import getpass

    from review_project import copy_challenger, manual_params

    from pipelines.review import history

    project = tiny_project.clone(tmp_path / "project")
    manual_params(project, **{"register.review_gallery": 0, "register.review_timeout_s": 300})
    assert copy_challenger(project) == "2"
    args = ["glcf", "flow", "--stages", "promote", "--no-dvc-commit"]
    env = project.env | {"PREFECT_API_URL": prefect_api}
    proc = subprocess.Popen(args, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with prefect_client(prefect_api) as client:
            paused = _paused_review(client, proc)
            assert paused.name == f"review-{MODEL}-v2"
            keyset = paused.state.state_details.run_input_keyset
            schema = json.loads(client.read_flow_run_input(paused.id, keyset["schema"]))
            assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]
            assert {"comment", "reviewer"} <= set(schema["properties"])
            description = client.read_flow_run_input(paused.id, keyset["description"])
            assert f"# Promotion review: {MODEL} v2" in description
            assert project.registry_state(MODEL)[1]["champion"] == "1"  # nothing moves while it waits
            client.resume_flow_run(
                paused.id, run_input={"decision": "approve", "comment": "checked on the line", "reviewer": "qa-lead"}
            )
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-4000:]
            assert client.read_flow_run(paused.id).state.is_completed()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert f"{CATEGORY}: promoted:" in out
    assert "(review approved)" in out
    assert project.registry_state(MODEL)[1]["champion"] == "2"
    events = history.read(MODEL, project.client())
    last = events[-1]
    assert (last.event, last.version, last.by, last.via, last.comment) == (
        "approved",
        "2",
        "qa-lead",
        "prefect",
        "checked on the line",
    )
    assert last.recorded_by == getpass.getuser()
    assert (last.champion_before, last.champion_after) == ("1", "2")

    # nobody answers in time: the review expires, the champion stays, the category flow completes
    project.set_params({"register.review_timeout_s": 2})
    assert copy_challenger(project) == "3"
    out = project.timed("review_expiry", *args, PREFECT_API_URL=prefect_api).stdout
    assert "(review expired)" in out
    assert project.registry_state(MODEL)[1]["champion"] == "2"
    last = history.read(MODEL, project.client())[-1]
    assert (last.event, last.version, last.by, last.champion_after) == ("expired", "3", "timeout", "2")
    assert project.client().get_model_version(MODEL, "3").tags["glcf.review.status"] == "expired"
