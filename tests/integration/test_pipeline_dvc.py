"""``dvc repro`` end to end on the tiny project: outputs, status, metrics, plots, no-op re-run, experiments.

The acceptance criterion of the pipeline issue: ``dvc exp run -S data.root=... -S data.categories=[...]``
pointed at a second, separately generated LOCO root runs the whole pipeline on it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pipeline_project import CATEGORY, TinyProject, shared_tiny_project

from pipelines.stages import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    return shared_tiny_project(tmp_path_factory)


def _json(proc) -> object:
    return json.loads(proc.stdout)


def test_repro_writes_every_stage_and_status_is_clean(tiny_project: TinyProject) -> None:
    root = tiny_project.root
    lock = (root / "dvc.lock").read_text()
    for stage in STAGES:
        assert f"{stage}@{CATEGORY}:" in lock
    metrics = json.loads((root / "reports" / CATEGORY / "metrics.json").read_text())
    assert 0.0 <= metrics["summary"]["image_auroc_total"] <= 1.0
    registration = json.loads((root / "reports" / CATEGORY / "registration.json").read_text())
    promotion = json.loads((root / "reports" / CATEGORY / "promotion.json").read_text())
    # floors at 0: the first version clears the gate and becomes champion
    assert registration["version"] == "1"
    assert promotion["promoted"] is True
    assert promotion["champion_version_after"] == "1"
    assert "first version" in promotion["reason"]
    assert (root / "reports" / CATEGORY / "review.md").read_text().startswith("# Promotion review")
    versions, aliases = tiny_project.registry_state(f"glcf-{CATEGORY}")
    assert versions == ["1"]
    assert aliases == {"challenger": "1", "champion": "1"}
    status = _json(tiny_project.run("dvc", "status", "--json"))
    assert status == {f"data@{CATEGORY}": ["always changed"]}


def test_repro_prints_a_line_or_two_per_stage(tiny_project: TinyProject) -> None:
    """The console of dvc repro: DVC's own lines, then each stage's summary and warnings; details go to files."""
    lines = tiny_project.repro_output.splitlines()
    dvc = re.compile(r"^(Running stage '|> glcf stage |Updating lock file|Use `dvc push`|$)")
    own = [line for line in lines if not dvc.match(line)]
    assert len(own) <= 2 * len(STAGES), "\n".join(own)
    for stage in STAGES:
        assert any(f"pipelines.stages.{stage}: " in line for line in own), stage
    assert "\r" not in tiny_project.repro_output  # no progress bar
    assert not [line for line in lines if "\x1b[" in line or line.startswith(("{", "}"))]  # no colours, no JSON
    assert (tiny_project.root / ".run" / "logs" / f"train@{CATEGORY}.log").read_text().count(
        "glcf.training.engine"
    ) >= 2


def test_metrics_and_plots_show(tiny_project: TinyProject, tmp_path: Path) -> None:
    from pipelines.stages.evaluate import HEADLINE

    shown = _json(tiny_project.run("dvc", "metrics", "show", "--json"))
    files = shown[""]["data"]
    headline_file = f"reports/{CATEGORY}/headline.json"
    assert set(files) == {headline_file}  # the headline only: no training, no per-type details
    reported = files[headline_file]["data"]
    summary = json.loads((tiny_project.root / "reports" / CATEGORY / "metrics.json").read_text())["summary"]
    calibration = json.loads((tiny_project.root / "models" / CATEGORY / "calibration.json").read_text())
    assert reported == {short: summary[key] for short, key in HEADLINE.items() if key in summary} | {
        "threshold": calibration["threshold"]["value"]
    }
    assert len(reported) <= 12
    table = tiny_project.run("dvc", "metrics", "show").stdout.splitlines()
    assert any(line.startswith(headline_file) for line in table)
    assert max(map(len, table)) <= 200, table
    plots = _json(tiny_project.run("dvc", "plots", "show", "--json"))["data"]
    expected = {
        f"models/{CATEGORY}/loss.png",
        f"reports/{CATEGORY}/plots/roc.png",
        f"reports/{CATEGORY}/plots/gallery.png",
    }
    assert expected <= set(plots)
    assert {p["type"] for entries in plots.values() for p in entries} == {"image"}  # no vega: no script to fetch
    assert "errors" not in json.dumps(plots)
    tiny_project.run("dvc", "plots", "show", "-o", str(tmp_path / "dvc_plots"))
    page = (tmp_path / "dvc_plots" / "index.html").read_text()
    assert "<script" not in page
    assert page.count("<img") >= len(expected)


def test_metrics_diff_reads_the_committed_run(tiny_project: TinyProject, tmp_path: Path) -> None:
    project = tiny_project.clone(tmp_path / "project")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "tiny project after dvc repro")
    assert _json(project.run("dvc", "metrics", "diff", "--json")) == {}
    headline = project.root / "reports" / CATEGORY / "headline.json"
    figures = json.loads(headline.read_text())
    headline.write_text(json.dumps(figures | {"auroc": 0.5}))
    diff = _json(project.run("dvc", "metrics", "diff", "--json"))
    changed = diff[f"reports/{CATEGORY}/headline.json"]
    assert changed == {"auroc": {"old": figures["auroc"], "new": 0.5, "diff": 0.5 - figures["auroc"]}}


def test_second_repro_runs_only_the_data_stage(tiny_project: TinyProject) -> None:
    lock_before = (tiny_project.root / "dvc.lock").read_text()
    proc = tiny_project.timed("dvc_repro_again", "dvc", "repro")
    ran = re.findall(r"Running stage '([^']+)'", proc.stdout)
    assert ran == [f"data@{CATEGORY}"]
    for stage in STAGES[1:]:
        assert f"Stage '{stage}@{CATEGORY}' didn't change, skipping" in proc.stdout
    assert (tiny_project.root / "dvc.lock").read_text() == lock_before
    assert _json(tiny_project.run("dvc", "status", "--json")) == {f"data@{CATEGORY}": ["always changed"]}


def test_a_code_edit_marks_every_stage_that_runs_it_changed(tiny_project: TinyProject, tmp_path: Path) -> None:
    """Editing the smoothing (model code no stage names on its own) leaves no stage up to date."""
    project = tiny_project.clone(tmp_path / "project")
    smoothing = project.root / "glcf" / "inference" / "smoothing.py"
    smoothing.write_text(smoothing.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    status = _json(project.run("dvc", "status", "--json"))
    assert status.pop(f"data@{CATEGORY}") == [{"changed deps": {"glcf": "modified"}}, "always changed"]
    assert status == {f"{stage}@{CATEGORY}": [{"changed deps": {"glcf": "modified"}}] for stage in STAGES[1:]}


def test_exp_run_on_a_second_loco_root(tiny_project: TinyProject, tmp_path: Path) -> None:
    from glcf.synth import GeneratorConfig, generate

    other = "juice_bottle"
    loco = tmp_path / "second-loco"
    cfg = GeneratorConfig.from_dict(
        {
            "seed": 7,
            "categories": [other],
            "image_size": [128, 96],
            "counts": {"train": 8, "validation": 4, "test_good": 4, "test_logical": 3, "test_structural": 3},
        }
    )
    generate(loco, cfg, progress=False)
    source_files = sorted(p.relative_to(loco / other) for p in (loco / other).rglob("*") if p.is_file())
    project = tiny_project.clone(tmp_path / "project")
    project.run("git", "add", "-A")
    project.run("git", "commit", "-q", "-m", "tiny project after dvc repro")
    proc = project.timed(
        "dvc_exp_run", "dvc", "exp", "run", "-S", f"data.root={loco}", "-S", f"data.categories=[{other}]"
    )
    ran = re.findall(r"Running stage '([^']+)'", proc.stdout)
    assert ran == [f"{stage}@{other}" for stage in STAGES]
    root = project.root
    imported = sorted(
        p.relative_to(root / "data/raw" / other) for p in (root / "data/raw" / other).rglob("*") if p.is_file()
    )
    assert imported == source_files
    manifest = json.loads((root / "data/prepared" / other / "manifest.json").read_text())
    assert len(manifest["splits"]["train"]) == 8
    metrics = json.loads((root / "reports" / other / "metrics.json").read_text())
    assert metrics["category"] == other
    # the experiment ran with the -S values, recorded in params.yaml and dvc exp show
    shown = _json(project.run("dvc", "exp", "show", "--json"))
    params_seen = json.dumps(shown)
    assert str(loco) in params_seen
    # one experiment per dataset: the second root's folder name
    experiments = {e.name for e in project.client().search_experiments()}
    assert {"glcf/synthetic-loco", "glcf/second-loco"} <= experiments
    assert project.registry_state(f"glcf-{other}") == (["1"], {"challenger": "1", "champion": "1"})
    # nothing of the original project moved
    assert tiny_project.registry_state(f"glcf-{other}") == ([], {})
