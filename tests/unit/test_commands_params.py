"""Commands that read ``--params`` answer a missing or bad file with one line naming it and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GLCF = str(Path(sys.executable).with_name("glcf"))


def _glcf(*args: str) -> subprocess.CompletedProcess:
    """The real command, as users run it (its log handler writes to the process's stderr)."""
    return subprocess.run([GLCF, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "argv",
    [["report"], ["predict", "--category", "pushpins", "x.png"], ["serve", "--category", "pushpins"]],
)
def test_missing_params_file_is_a_one_line_error(argv: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = _glcf(*argv, "--params", str(missing))
    assert result.returncode == 2
    assert f"{argv[0]}: {missing}: parameter file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_params_value_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  categories: []\n")
    result = _glcf("report", "--params", str(bad))
    assert result.returncode == 2
    assert "report: " in result.stderr
    assert "data.categories: must list at least one category" in result.stderr
