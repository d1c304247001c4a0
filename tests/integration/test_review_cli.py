"""Promotion reviews on the tiny project's real MLflow store: the review report, manual approval from
the command line, the history and rollback.

The challenger is the trained model registered once more by the real register stage with a lower
threshold (no training): challenger and champion then disagree exactly on the test images scored
between the two thresholds, which the gallery must list.
"""

from __future__ import annotations

import csv
import getpass
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_project import CATEGORY, TinyProject, shared_tiny_project
from review_project import MODEL, manual_params, release_log_handler, tracking
from stack_project import stage_result

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


def per_image(project: TinyProject) -> dict[str, dict[str, str]]:
    with (project.root / "reports" / CATEGORY / "per_image.csv").open() as fh:
        return {f"{Path(r['path']).parent.name}/{Path(r['path']).stem}": r for r in csv.DictReader(fh)}


def review(project: TinyProject, *args: str) -> tuple[int, str]:
    """``glcf review ...`` in this process on the project's store: (exit code, output)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    with tracking(project):
        result = CliRunner().invoke(app, ["review", *args, "--params", str(project.params_file)])
    release_log_handler()
    return result.exit_code, result.output


def test_a_version_is_tagged_for_filtering_and_its_metrics_are_its_runs(tiny_project: TinyProject) -> None:
    """The register stage tags a version with what a reviewer filters on; the review reads the run's metrics."""
    from mlflow.models import get_model_info

    from pipelines import registry

    client = tiny_project.client()
    version = client.get_model_version(MODEL, "1")
    metrics = json.loads((tiny_project.root / "reports" / CATEGORY / "metrics.json").read_text())
    gated = tiny_project.params().register.gated_metrics
    registered = {k for k in version.tags if not k.startswith(("glcf.promotion.", "glcf.review."))}
    assert registered == {f"metric.{m}" for m in gated} | {
        "glcf.category",
        "glcf.variant",
        "glcf.test_split_hash",
        "glcf.run_id",
        "glcf.train_id",
        "glcf.data_hash",
        "glcf.threshold",
        "mlflow.source.git.commit",
    }
    assert len(gated) == 4 < len(metrics["summary"])  # not every figure of the evaluation
    assert version.tags["glcf.category"] == CATEGORY
    assert version.tags["glcf.test_split_hash"] == metrics["test_split_hash"]
    with tracking(tiny_project):
        info = registry.get_version(MODEL, "1")
        signature = get_model_info(f"models:/{MODEL}/1").signature
    summary = metrics["summary"]
    evaluated = {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and np.isfinite(v)}
    assert info.metrics == pytest.approx(evaluated)  # the evaluation logged with the run, nothing else
    assert signature.outputs is not None
    assert {"score", "is_anomaly", "threshold"} <= set(signature.outputs.input_names())


def test_review_without_a_champion_shows_the_misses_and_false_alarms(tiny_project: TinyProject, tmp_path: Path) -> None:
    from pipelines import registry
    from pipelines.review import history
    from pipelines.review.report import build_report

    project = tiny_project.clone(tmp_path / "project")
    project.set_params({"register.review_gallery": 8})
    params = project.params()
    with tracking(project):
        first = registry.get_version(MODEL, "1")
        report = build_report(params, params.category_paths(CATEGORY), first, None, None, first.metrics)
        (event,) = history.read(MODEL)  # the automatic gate's decision at dvc repro
    folder = project.root / "reports" / CATEGORY / "review"
    comparison = json.loads((folder / "comparison.json").read_text())
    assert comparison["champion"] is None
    assert comparison["gallery"] == report.picks
    rows = per_image(project)
    wrong = [k for k, r in rows.items() if int(r["decision"]) != int(r["label"])]
    assert len(report.picks) == min(8, len(wrong)) > 0
    for row in report.picks:
        seen = rows[row["image"]]
        assert row["why"] == ("miss" if seen["label"] == "1" else "false alarm")
        assert row["challenger_score"] == pytest.approx(float(seen["score"]), abs=1e-4)
        assert row["challenger_anomalous"] == (seen["decision"] == "1")
    with Image.open(folder / "gallery.png") as im:
        assert im.format == "PNG"
    assert "the challenger's misses and false alarms" in report.markdown
    assert "## Thresholds and false alarms on good images" in report.markdown
    assert (event.event, event.gate, event.by, event.champion_before, event.champion_after) == (
        "gate",
        "passed",
        "gate",
        None,
        "1",
    )
    # the shared project's own review (no gallery there) is logged with the version's run
    run_id = json.loads((tiny_project.root / "reports" / CATEGORY / "registration.json").read_text())["run_id"]
    logged = {a.path for a in tiny_project.client().list_artifacts(run_id, "review/v1")}
    assert logged == {"review/v1/comparison.json", "review/v1/review.md"}


def test_manual_approval_from_the_command_line(tiny_project: TinyProject, tmp_path: Path) -> None:
    project = tiny_project.clone(tmp_path / "project")
    manual_params(project, **{"register.review_gallery": 8})
    scores = sorted(float(r["score"]) for r in per_image(project).values())
    calibration = project.root / "models" / CATEGORY / "calibration.json"
    record = json.loads(calibration.read_text())
    old = record["threshold"]["value"]
    half = len(scores) // 2  # the challenger passes half the test images, or one more where the champion does
    half += half == sum(score <= old for score in scores)
    new = (scores[half - 1] + scores[half]) / 2
    record["threshold"]["value"] = new
    calibration.write_text(json.dumps(record))
    from pipelines.stages.runner import run_stage

    with tracking(project):  # the register stage in this process: setting up the challenger, not under test
        assert run_stage("register", CATEGORY, project.params_file, progress=False).version == "2"
    promoted = stage_result(project.timed("promote", "glcf", "stage", "promote", CATEGORY, "--json").stdout)
    assert (promoted["status"], promoted["promoted"]) == ("pending", False)
    assert project.registry_state(MODEL) == (["1", "2"], {"challenger": "2", "champion": "1"})

    review_md = (project.root / "reports" / CATEGORY / "review.md").read_text()
    assert "**Decision: PASSED THE GATE, AWAITING APPROVAL**" in review_md
    assert f"| challenger v2 | {new:.4f} |" in review_md
    assert f"| champion v1 | {old:.4f} |" in review_md
    assert "## Image AUROC per defect type" in review_md
    assert "where challenger and champion disagree" in review_md
    # the gallery: exactly the images scored between the two thresholds, largest difference first
    between = {k for k, r in per_image(project).items() if min(old, new) < float(r["score"]) <= max(old, new)}
    gallery = json.loads((project.root / "reports" / CATEGORY / "review" / "comparison.json").read_text())["gallery"]
    assert 0 < len(between) <= 8  # the tiny test split: the gallery holds all of them
    assert {r["image"] for r in gallery} == between
    assert all(r["challenger_anomalous"] != r["champion_anomalous"] for r in gallery)
    assert all(r["challenger_score"] == pytest.approx(r["champion_score"], abs=1e-5) for r in gallery)  # same weights
    assert [abs(r["difference"]) for r in gallery] == sorted((abs(r["difference"]) for r in gallery), reverse=True)
    report_uri = project.client().get_model_version(MODEL, "2").tags["glcf.review.report"]
    run_id = report_uri.split("/")[1]
    assert "review/v2/gallery.png" in {a.path for a in project.client().list_artifacts(run_id, "review/v2")}

    code, out = review(project, "list")
    assert code == 0, out
    assert f"{MODEL} v2  pending since" in out
    assert "champion v1  gate passed: image_auroc_total improved" in out
    assert "champion v1" in out
    code, out = review(project, "show", CATEGORY, "2")
    assert code == 0, out
    assert out.startswith(f"{MODEL} v2: pending\n")
    assert "AWAITING APPROVAL" in out
    user = getpass.getuser()
    code, out = review(project, "approve", MODEL, "2", "--comment", "fewer misses on the lids")
    assert code == 0, out
    assert out.strip() == f"{MODEL} v2: approved by {user}; @champion 1 -> 2"
    assert project.registry_state(MODEL)[1]["champion"] == "2"
    code, out = review(project, "approve", MODEL, "2", "--comment", "twice")
    assert code == 1
    assert out.strip() == f"glcf review approve: {MODEL} v2: not pending review (status: approved)"
    code, out = review(project, "reject", MODEL, "7")
    assert code == 1
    assert out.strip() == f"glcf review reject: {MODEL} v7: no such registered model version"

    code, out = review(project, "rollback", MODEL, "--comment", "line stops on v2")
    assert code == 0, out
    assert project.registry_state(MODEL)[1]["champion"] == "1"
    code, out = review(project, "history", MODEL)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["v1", "gate"],
        ["v2", "pending"],
        ["v2", "approved"],
        ["v1", "rollback"],
    ]
    assert f"by {user} via cli  @champion 1 -> 2  fewer misses on the lids" in lines[2]
    assert f"by {user} via cli  @champion 2 -> 1  line stops on v2" in lines[3]
    assert "@champion 1 -> 1" in lines[1]
