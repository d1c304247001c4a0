"""pipelines.benchmark without training: variant overrides, request validation, training keys, the table."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from pipelines.benchmark.plan import VARIANTS, BenchmarkError, JobResult, plan, variant_overrides
from pipelines.benchmark.run import training_key
from pipelines.benchmark.table import COLUMNS, markdown_table, table_rows
from pipelines.io import write_json
from pipelines.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", path)
    return path


def test_every_variant_loads_and_changes_what_it_names(params_file: Path) -> None:
    base = load_params(params_file)
    for variant in VARIANTS:
        overrides = variant_overrides(base, variant, epochs=3)
        params = load_params(params_file, overrides)
        assert params.register.variant == variant
        assert params.glcf.train.epochs == 3
        assert params.paths.models == f"{base.paths.models}/benchmark/{variant}"
        assert params.paths.reports == f"{base.paths.reports}/benchmark/{variant}"
        assert params.paths.raw == base.paths.raw  # data and manifests are shared
        assert params.paths.prepared == base.paths.prepared
    flat = {v: load_params(params_file, variant_overrides(base, v, None)).flat() for v in VARIANTS}
    assert flat["pgs"]["model.bottleneck.layout"] == "pgs"
    assert flat["ps"]["model.bottleneck.layout"] == "ps"
    assert flat["no_sb"]["model.ablation.semantic_bottleneck"] is False
    assert flat["no_mspem"]["model.ablation.ms_pem"] is False
    assert flat["no_sam"]["model.ablation.sam"] is False
    assert flat["correspondence"]["model.scoring.map_source"] == "correspondence"
    assert flat["paper_fusion"]["model.scoring.fusion"] == "fixed"
    assert flat["paper_fusion"]["model.scoring.memory"] is False
    assert flat["no_layout_memory"]["model.scoring.layout_memory"] is False
    assert flat["pss"]["model.scoring.memory"] is True  # the default keeps both memories
    assert flat["pss"]["train.epochs"] == base.glcf.train.epochs  # no --epochs: params.yaml's value


def test_plan_rejects_bad_requests_before_any_work(params_file: Path) -> None:
    _, jobs = plan(params_file, ["jam_jars"], ["pss", "no_sam"], 1)
    assert [(v, c) for v, c, _ in jobs] == [("pss", "jam_jars"), ("no_sam", "jam_jars")]
    with pytest.raises(BenchmarkError, match="unknown variant 'nope'"):
        plan(params_file, None, ["pss", "nope"], None)
    with pytest.raises(BenchmarkError, match="variants: listed twice"):
        plan(params_file, None, ["pss", "pss"], None)
    with pytest.raises(BenchmarkError, match="epochs: must be a positive integer"):
        plan(params_file, None, ["pss"], 0)
    with pytest.raises(ParamsError, match="'nope' is not a configured category"):
        plan(params_file, ["nope"], ["pss"], None)


def test_training_key_ignores_scoring_only(params_file: Path, tmp_path: Path) -> None:
    base = load_params(params_file)
    paths = base.category_paths("jam_jars", root=tmp_path)
    write_json(paths.manifest, {"hashes": {"train": "abc"}})

    def key(variant: str) -> str:
        params = load_params(params_file, variant_overrides(base, variant, None))
        return training_key(params, params.category_paths("jam_jars", root=tmp_path))

    scoring_only = (
        "correspondence",
        "paper_fusion",
        "calibrated_only",
        "no_patch_memory",
        "no_layout_memory",
        "whole_layout",
        "pair_layout",
        "global_peak",
        "no_position_memory",
    )
    for variant in scoring_only:  # same training, other scoring: the checkpoint is shared
        assert key(variant) == key("pss"), variant
    assert len({key(v) for v in VARIANTS}) == len(VARIANTS) - len(scoring_only)
    before = key("pss")
    write_json(paths.manifest, {"hashes": {"train": "other data"}})
    assert key("pss") != before  # other training data: never shared


def _result(variant: str, category: str, total: float) -> JobResult:
    summary = {key: total for key in COLUMNS.values()}
    return JobResult(variant, category, f"run-{variant}-{category}", summary, 1.5)


def test_table_has_means_over_categories_and_marks_the_best() -> None:
    results = [_result("pss", "a", 0.9), _result("pss", "b", 0.7), _result("ps", "a", 0.6), _result("ps", "b", 0.8)]
    rows = table_rows(results)
    assert [(r["variant"], r["category"]) for r in rows] == [
        ("pss", "a"), ("pss", "b"), ("pss", "mean"), ("ps", "a"), ("ps", "b"), ("ps", "mean"),
    ]  # fmt: skip
    assert rows[2]["image_auroc_total"] == pytest.approx(0.8)
    assert rows[5]["image_auroc_total"] == pytest.approx(0.7)
    assert rows[2]["train_seconds"] == pytest.approx(3.0)
    md = markdown_table(rows, "t")
    assert "| pss | a | **0.9000** |" in md
    assert "| ps | b | **0.8000** |" in md
    assert "| pss | mean | **0.8000** |" in md
    nan = table_rows([JobResult("pss", "a", "r", {}, 0.0)])
    assert all(math.isnan(nan[0][c]) for c in COLUMNS)
    assert "| pss | a | – | – | – | – | – |" in markdown_table(nan, "t")
