"""Peer baselines without anomalib: names, layer checks, the table with peers, the missing-extra error."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipelines.benchmark.plan import JobResult
from pipelines.benchmark.run import run_benchmark
from pipelines.benchmark.table import MARKDOWN_WIDTH, markdown_table, table_rows, write_csv
from pipelines.peers import PEERS, LayerInfo, PeerError, check_layers, parse_peers, require_anomalib
from pipelines.peers.jobs import check_peers_installed
from pipelines.peers.models import pin_malloc_mmap_threshold, torch_threads

REPO = Path(__file__).resolve().parents[2]
LITE0_INFO = [
    {"module": "blocks.0", "num_chs": 16, "reduction": 2},
    {"module": "blocks.1", "num_chs": 24, "reduction": 4},
    {"module": "blocks.2", "num_chs": 40, "reduction": 8},
    {"module": "blocks.4", "num_chs": 112, "reduction": 16},
    {"module": "blocks.6", "num_chs": 320, "reduction": 32},
]


class FakeExtractor:
    """What check_layers reads of anomalib's TimmFeatureExtractor."""

    def __init__(self, layers: list[str], dims: list[int], strides: list[int], sides: list[int] | None = None):
        self.layers, self.out_dims, self.reductions = layers, dims, strides
        self.sides = sides

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-1]
        sides = self.sides or [math.ceil(size / s) for s in self.reductions]
        return {n: torch.zeros(1, c, s, s) for n, c, s in zip(self.layers, self.out_dims, sides, strict=True)}


def test_importing_the_pipeline_does_not_import_anomalib() -> None:
    code = "import sys, glcf, glcf.model, pipelines.benchmark.run, pipelines.peers; print('anomalib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_parse_peers_validates_names() -> None:
    assert parse_peers(["PatchCore", " padim "]) == ["patchcore", "padim"]
    assert parse_peers(None) == []
    with pytest.raises(PeerError, match="unknown peer 'nope'"):
        parse_peers(["patchcore", "nope"])
    with pytest.raises(PeerError, match="listed twice"):
        parse_peers(["padim", "padim"])


def test_peer_layers_are_lite0_feature_modules() -> None:
    modules = {i["module"]: i["reduction"] for i in LITE0_INFO}
    assert [modules[n] for n in PEERS["patchcore"].layers] == [8, 16]
    assert [modules[n] for n in PEERS["padim"].layers] == [4, 8, 16]
    assert PEERS["patchcore"].options["coreset_sampling_ratio"] == 0.1


def test_check_layers_accepts_what_was_asked() -> None:
    layers = check_layers(
        FakeExtractor(["blocks.2", "blocks.4"], [40, 112], [8, 16]), LITE0_INFO, ["blocks.2", "blocks.4"], 64
    )
    assert layers == (LayerInfo("blocks.2", 40, 8), LayerInfo("blocks.4", 112, 16))


@pytest.mark.parametrize(
    ("extractor", "match"),
    [
        (FakeExtractor(["blocks.4"], [112], [16]), "kept layers"),  # anomalib dropped a name it did not know
        (FakeExtractor(["blocks.2", "blocks.4"], [40, 112], [8, 32]), r"\(channels, stride\)"),
        (FakeExtractor(["blocks.2", "blocks.4"], [40, 112], [8, 16], sides=[8, 2]), "layer blocks.4: output"),
    ],
)
def test_check_layers_rejects_dropped_or_wrong_layers(extractor: FakeExtractor, match: str) -> None:
    with pytest.raises(PeerError, match=match):
        check_layers(extractor, LITE0_INFO, ["blocks.2", "blocks.4"], 64)


def test_check_layers_rejects_names_the_backbone_lacks() -> None:
    with pytest.raises(PeerError, match="the backbone has"):
        check_layers(FakeExtractor(["layer2"], [40], [8]), LITE0_INFO, ["layer2"], 64)


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(PeerError, match="positive"), torch_threads(0):
        pass


def test_malloc_threshold_is_harmless() -> None:
    assert isinstance(pin_malloc_mmap_threshold(), bool)


def test_missing_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anomalib", None)  # import fails as if not installed
    with pytest.raises(PeerError, match=r"glcf\[peers\]") as err:
        require_anomalib()
    assert "\n" not in str(err.value)
    assert "uv sync --extra peers" in str(err.value)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(PeerError, match=r"--peers patchcore: anomalib is not installed"):
        check_peers_installed(["patchcore"])
    check_peers_installed([])  # no peers: no check


def test_benchmark_rejects_unknown_peer_before_any_work(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", params)
    with pytest.raises(PeerError, match="unknown peer"):
        run_benchmark(params, None, ["pss"], peers=["nope"], progress=False)
    assert not (tmp_path / "mlflow.db").exists()


def _results() -> list[JobResult]:
    summary = {
        "image_auroc_total": 0.91,
        "image_auroc_logical_anomalies": 0.9,
        "image_auroc_structural_anomalies": 0.92,
        "pixel_auroc": 0.95,
        "spro_0.05_mean": 0.5,
        "image_auroc_defect_box_crack": 0.8,
    }
    out = []
    for category in ("splicing_connectors", "pushpins"):
        out.append(JobResult("correspondence", category, "r1", dict(summary), 12345.6, "pss", 1234.5, 128))
        peer = dict(summary, image_auroc_total=0.99, image_auroc_defect_mixed_colours=0.7)
        out.append(
            JobResult("patchcore", category, "r2", peer, 91.2, None, 33.6, 128, "blocks.2/8+blocks.4/16", "peer")
        )
    return out


def test_table_with_peers_fits_a_terminal_and_keeps_details_in_the_csv(tmp_path: Path) -> None:
    rows = table_rows(_results())
    assert [(r["variant"], r["category"]) for r in rows] == [
        ("correspondence", "splicing_connectors"), ("correspondence", "pushpins"), ("correspondence", "mean"),
        ("patchcore", "splicing_connectors"), ("patchcore", "pushpins"), ("patchcore", "mean"),
    ]  # fmt: skip
    assert rows[5]["kind"] == "peer"
    assert rows[5]["images_per_second"] == pytest.approx(33.6)
    assert math.isnan(rows[0]["image_auroc_defect_mixed_colours"])  # per-defect keys: union over rows
    md = markdown_table(rows, "GLCF benchmark 1234abcd (loco-generated)")
    assert max(len(line) for line in md.splitlines()) <= MARKDOWN_WIDTH
    assert md.splitlines()[0].endswith(", 128 px")
    assert "| patchcore | pushpins | **0.9900** |" in md
    assert "| 12346 | 1234 |" in md
    assert "| 91.2 | 33.6 |" in md
    assert "- patchcore: anomalib peer, layers/stride blocks.2/8+blocks.4/16" in md
    assert "checkpoint of pss" in md
    assert "image_auroc_defect_box_crack" not in md
    header = write_csv(rows, tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert {"image_auroc_defect_box_crack", "image_auroc_defect_mixed_colours", "images_per_second"} <= set(header)
    assert {"image_size", "kind", "note", "train_seconds"} <= set(header)


def test_glcf_rows_without_throughput_show_a_dash() -> None:
    md = markdown_table(table_rows([JobResult("pss", "a", "r", {}, 0.0)]), "t")
    assert md.splitlines()[-1] == "| pss | a | – | – | – | – | – | 0.0 | – |"


def test_peer_result_params_name_the_layers() -> None:
    from pipelines.peers import PeerResult

    result = PeerResult(
        name="padim",
        backbone="tf_efficientnet_lite0",
        weights="offline-package",
        image_size=128,
        layers=(LayerInfo("blocks.1", 24, 4), LayerInfo("blocks.2", 40, 8)),
        options={"n_features": 100},
        image_scores=SimpleNamespace(),  # type: ignore[arg-type]
        anomaly_maps=SimpleNamespace(),  # type: ignore[arg-type]
        validation_scores=SimpleNamespace(),  # type: ignore[arg-type]
        fit_seconds=1.0,
        images_per_second=2.0,
        threads=1,
        device="cpu",
        n_train=3,
    )
    params = result.params()
    assert params["layers"] == "blocks.1,blocks.2"
    assert params["layer_strides"] == "4,8"
    assert params["weights"] == "offline-package"
    assert params["peer.n_features"] == "100"
    assert result.layer_text() == "blocks.1/4+blocks.2/8"
