"""One setting for torch's intra-op threads (GLCF_THREADS), applied at each entry point."""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from glcf.runtime import set_torch_threads, torch_threads
from pipelines.settings import THREADS_VARIABLE, Settings, apply_torch_threads, threads_shared_by

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_default_splits_torch_s_own_count_between_side_by_side_runs() -> None:
    whole = torch_threads()
    assert whole >= 1
    assert torch_threads(share=2) == max(1, whole // 2)
    assert torch_threads(share=10_000) == 1  # never zero
    assert torch_threads(3, share=8) == 3  # an explicit count wins
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            torch_threads(bad)


def test_set_torch_threads_holds_in_threads_started_afterwards() -> None:
    assert set_torch_threads(1) == 1
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert torch.get_num_threads() == 1
    assert seen == [1]


def test_glcf_threads_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    assert apply_torch_threads(share=4) == 1 == torch.get_num_threads()
    monkeypatch.delenv(THREADS_VARIABLE)
    assert apply_torch_threads() == torch_threads() == torch.get_num_threads()
    monkeypatch.setenv(THREADS_VARIABLE, "0")
    with pytest.raises(ValueError, match="glcf_threads"):
        Settings()
    assert THREADS_VARIABLE.lower() in Settings.model_fields


def test_threads_shared_by_pins_each_run_s_part_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    with threads_shared_by(2) as count:
        assert count == torch_threads(share=2)
        assert os.environ[THREADS_VARIABLE] == str(count)
    assert THREADS_VARIABLE not in os.environ
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    with threads_shared_by(2) as count:
        assert count == 3
    assert os.environ[THREADS_VARIABLE] == "3"


def test_the_served_model_reads_the_same_variable() -> None:
    """model_code.py runs without the pipelines package, so it names the variable itself."""
    tree = ast.parse((ROOT / "pipelines" / "serving" / "model_code.py").read_text(encoding="utf-8"))
    values = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "THREADS_VARIABLE" for t in node.targets)
    ]
    assert values == [THREADS_VARIABLE]
