"""``glcf model-info``: the real CLI in a subprocess; counts checked against the hand counts of docs/model.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def glcf_command() -> list[str]:
    script = Path(sys.executable).with_name("glcf")
    return [str(script)] if script.exists() else [shutil.which("glcf") or "glcf"]


@pytest.fixture(scope="module")
def paper_info() -> dict:
    out = subprocess.run(
        [*glcf_command(), "model-info", "--preset", "paper", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def test_paper_counts(paper_info: dict) -> None:
    p = paper_info["parameters"]
    # docs/model.md, Parameter counts: MS-PEM convs 737,520 + 368,880 + 184,560; bottleneck about 14.0 M
    assert p["ms_pem"] == {"trainable": 737_520 + 368_880 + 184_560, "frozen": 0}
    assert p["bottleneck"]["trainable"] == pytest.approx(14.0e6, abs=0.05e6)
    for name in ("global_correspondence", "local_estimation", "global_estimation"):
        assert p[name]["trainable"] == pytest.approx(13.1e6, abs=0.05e6)  # docs/model.md, Parameter counts
        assert p[name]["frozen"] == 0
    assert p["encoder"]["trainable"] == 0
    assert p["encoder"]["frozen"] > 10e6  # Swin-T up to E4
    modules = ("encoder", "ms_pem", "sam", "global_correspondence", "local_estimation", "global_estimation")
    assert p["total"]["trainable"] == sum(p[m]["trainable"] for m in modules)
    assert p["total"]["frozen"] == sum(p[m]["frozen"] for m in modules)


def test_paper_shapes(paper_info: dict) -> None:
    s = paper_info["shapes"]  # docs/model.md, Parameter counts
    assert s["encoder"] == [[1, 96, 56, 56], [1, 192, 28, 28], [1, 384, 14, 14], [1, 768, 7, 7]]
    assert s["representations"] == {"global": [1, 768, 7, 7], "original": [1, 768, 7, 7]}
    for branch in ("global_corr", "local_est", "global_est"):
        assert s[branch] == [[1, 96, 56, 56], [1, 192, 28, 28], [1, 384, 14, 14]]
    assert paper_info["config"]["encoder"] == {
        "name": "swin_tiny_patch4_window7_224",
        "weights": "none",
        "tap_norm": "none",  # encoder.tap_norm (added later): Swin taps are used as they are
    }


def test_bad_preset_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["model-info", "--preset", "huge"])
    assert result.exit_code == 2
    assert "unknown preset 'huge'" in result.output


def test_human_readable_table_of_tiny() -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["model-info", "--preset", "tiny", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:1] == ["ms_pem"] for line in lines)
    assert any(line.startswith("local_est scale 1") and "[1, 24, 16, 16]" in line for line in lines)
