"""``glcf predict`` and ``glcf benchmark`` on the tiny project (real CLI processes, real MLflow store)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from pipeline_project import CATEGORY, TinyProject, shared_tiny_project

from pipelines.benchmark.table import COLUMNS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = f"glcf-{CATEGORY}"
VARIANTS = ["pss", "pgs", "ps", "no_sb", "no_mspem", "no_sam", "correspondence"]


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


def test_predict_scores_files_with_the_champion(tiny_project: TinyProject, tmp_path: Path) -> None:
    from glcf.detector import Detector

    test = tiny_project.root / "data" / "raw" / CATEGORY / "test"
    gray = tmp_path / "gray_odd.jpg"
    with Image.open(test / "good" / "001.png") as im:
        im.convert("L").resize((133, 71)).save(gray, quality=90)
    files = [test / "good" / "000.png", test / "logical_anomalies" / "000.png", gray]
    maps = tmp_path / "maps"
    proc = tiny_project.run("glcf", "predict", "--category", CATEGORY, *map(str, files), "--map-dir", str(maps))
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["path", "score", "decision", "threshold", "version"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == [str(f) for f in files]

    local = tiny_project.download_model(MODEL, "1", tmp_path / "v1")
    expected = Detector(local / "artifacts" / "bundle.pt").score(files)
    for row, want in zip(rows, expected, strict=True):
        assert float(row[1]) == pytest.approx(want.score, abs=1e-4)  # printed with 4 decimals
        assert row[2] == ("anomalous" if want.is_anomaly else "normal")
        assert float(row[3]) == pytest.approx(want.threshold, abs=1e-4)
        assert row[4] == "1"
    written = sorted(p.name for p in maps.glob("*.png"))
    assert written == ["000_2_map.png", "000_map.png", "gray_odd_map.png"]
    for path in maps.glob("*.png"):
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert min(im.size) > 50

    missing = tiny_project.run("glcf", "predict", "-c", CATEGORY, str(tmp_path / "nope.png"), check=False)
    assert missing.returncode == 2
    assert "nope.png: no such image file" in missing.stderr
    no_alias = tiny_project.run("glcf", "predict", "-c", CATEGORY, "--alias", "nope", str(files[0]), check=False)
    assert no_alias.returncode == 2
    assert "has no alias @nope" in no_alias.stderr


def test_benchmark_runs_every_variant_as_nested_runs(tiny_project: TinyProject, tmp_path: Path) -> None:
    project = tiny_project.clone(tmp_path / "project")
    versions_before = project.registry_state(MODEL)
    proc = project.timed("benchmark", "glcf", "benchmark", "--variants", ",".join(VARIANTS), "--epochs", "1")
    out = project.root / "reports" / "benchmark"
    parent_id = proc.stdout.split("parent run: ")[1].split()[0]

    with (out / "benchmark.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in rows] == VARIANTS  # one category: no mean rows
    assert set(COLUMNS) <= set(rows[0])
    markdown = (out / "benchmark.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} | {CATEGORY} |" in markdown
    with Image.open(out / "benchmark.png") as im:
        assert im.format == "PNG"

    client = project.client()
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["glcf.kind"] == "benchmark"
    assert parent.data.tags["glcf.variants"] == ",".join(VARIANTS)
    logged = {a.path for a in client.list_artifacts(parent_id, "benchmark")}
    assert {"benchmark/benchmark.csv", "benchmark/benchmark.md", "benchmark/benchmark.png"} <= logged
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    by_variant = {c.data.tags["glcf.variant"]: c for c in children}
    assert sorted(by_variant) == sorted(VARIANTS)
    for row in rows:
        child = by_variant[row["variant"]]
        assert child.info.run_id == row["run_id"]
        assert child.info.run_name == f"{CATEGORY}/{row['variant']}"
        assert child.data.params["train.epochs"] == "1"
        assert child.data.metrics["image_auroc_total"] == pytest.approx(float(row["image_auroc_total"]))
        metrics = json.loads((out / row["variant"] / CATEGORY / "metrics.json").read_text())
        assert metrics["summary"]["pixel_auroc"] == pytest.approx(float(row["pixel_auroc"]))
    # each variant trained with its own settings; correspondence reused the pss checkpoint
    assert by_variant["pgs"].data.params["model.bottleneck.layout"] == "pgs"
    assert by_variant["no_sam"].data.params["model.ablation.sam"] == "False"
    assert by_variant["correspondence"].data.params["model.scoring.map_source"] == "correspondence"
    assert by_variant["correspondence"].data.tags["glcf.checkpoint_from_variant"] == "pss"
    models = project.root / "models" / "benchmark"
    pss_ckpt = (models / "pss" / CATEGORY / "model.pt").read_bytes()
    assert (models / "correspondence" / CATEGORY / "model.pt").read_bytes() == pss_ckpt
    assert (models / "pgs" / CATEGORY / "model.pt").read_bytes() != pss_ckpt
    # nothing registered, the pipeline's own outputs untouched
    assert project.registry_state(MODEL) == versions_before
    assert json.loads(project.run("dvc", "status", "--json").stdout) == {f"data@{CATEGORY}": ["always changed"]}

    bad = project.run("glcf", "benchmark", "--variants", "pss,nope", check=False)
    assert bad.returncode == 2
    assert "unknown variant 'nope'" in bad.stderr


def test_report_lists_each_category_from_its_reports(tiny_project: TinyProject) -> None:
    rows = json.loads(tiny_project.run("glcf", "report", "--json").stdout)
    assert [r["category"] for r in rows] == [CATEGORY]
    metrics = json.loads((tiny_project.root / "reports" / CATEGORY / "metrics.json").read_text())["summary"]
    promotion = json.loads((tiny_project.root / "reports" / CATEGORY / "promotion.json").read_text())
    row = rows[0]
    assert row["image_auroc_total"] == metrics["image_auroc_total"]
    assert row["image_auroc_logical_anomalies"] == metrics["image_auroc_logical_anomalies"]
    assert row["spro_0.05_mean"] == metrics["spro_0.05_mean"]
    assert row["version"] == promotion["challenger_version"]
    full = json.loads((tiny_project.root / "reports" / CATEGORY / "metrics.json").read_text())
    assert [d["defect"] for d in row["defects"]] == list(full["defect_types"])  # every defect type of the split
    first = row["defects"][0]
    assert first["fused"] == metrics[f"image_auroc_defect_{first['defect']}"]
    assert first["global"] == metrics[f"image_auroc_global_defect_{first['defect']}"]
    table = tiny_project.run("glcf", "report").stdout.splitlines()
    assert table[0].split()[:4] == ["category", "image", "AUROC", "logical"]
    assert table[2].startswith(CATEGORY)
    assert "image AUROC per defect type (fused / local branch alone / global branch alone)" in table


def test_evaluate_command_reports_what_the_evaluate_stage_reports(tiny_project: TinyProject, tmp_path: Path) -> None:
    """``glcf evaluate`` with the stage's checkpoint and calibration runs the stage's evaluation: same figures."""
    root = tiny_project.root
    out = tmp_path / "report"
    tiny_project.run(
        "glcf", "evaluate", "--checkpoint", str(root / "models" / CATEGORY / "model.pt"),
        "--calibration", str(root / "models" / CATEGORY / "calibration.json"),
        "--data-root", str(root / "data" / "raw"), "--category", CATEGORY, "--out", str(out), "--device", "cpu",
    )  # fmt: skip
    stage = json.loads((root / "reports" / CATEGORY / "metrics.json").read_text())
    command = json.loads((out / "metrics.json").read_text())
    assert command["summary"] == pytest.approx(stage["summary"], rel=1e-6)
    assert command["image_score"] == stage["image_score"]
    assert command["threshold"] == stage["threshold"]


def test_stage_after_a_lost_tracking_store_backfills_the_training(tiny_project: TinyProject, tmp_path: Path) -> None:
    """A store lost after training: the next stage re-creates the run with the history and ``train.final.*``."""
    project = tiny_project.clone(tmp_path / "lost_store")
    (project.root / "mlflow.db").unlink()
    project.run("glcf", "stage", "calibrate", CATEGORY)
    client = project.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="tags.`glcf.backfilled` = 'true'")
    assert len(runs) == 1
    run = runs[0]
    summary = json.loads((project.root / "models" / CATEGORY / "train_metrics.json").read_text())
    assert run.data.metrics["train.final.epochs"] == summary["epochs"]
    assert run.data.metrics["train.final.train_images"] == summary["train_images"]
    assert "train.epochs" not in run.data.metrics  # the summary is not mixed into the per-epoch series
    losses = client.get_metric_history(run.info.run_id, "train.loss")
    assert sorted(m.step for m in losses) == list(range(1, summary["epochs"] + 1))
