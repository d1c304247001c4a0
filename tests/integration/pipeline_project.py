"""A tiny trained copy of the project, shared by the pipeline integration tests (test_pipeline_*.py).

:func:`shared_tiny_project` copies the working tree of the repository (tracked and untracked,
non-ignored files) into a temporary folder, makes it a git repository, writes a tiny configuration
into its ``params.yaml`` (one category, 128x96 images, a 64 px tiny model, 2 epochs, promotion
floors at 0 so the first version becomes champion, no review gallery, small serving limits) and runs the real
``dvc repro`` once. The tests only read it; a test that changes things works on :meth:`clone`.

Test modules define a session fixture that calls :func:`shared_tiny_project`; the built project is
cached per process, so all of them share one ``dvc repro``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CATEGORY = "pushpins"

#: The tiny configuration (dotted keys into params.yaml).
TINY = {
    "data.categories": [CATEGORY],
    "data.generator": {
        "seed": 0,
        "image_size": [128, 96],
        "counts": {"train": 8, "validation": 4, "test_good": 4, "test_logical": 3, "test_structural": 3},
    },
    "model.preset": "tiny",
    "model.image_size": 64,
    "model.encoder.weights": "offline-package",
    "model.bottleneck": {"layout": "pss", "dim": 32, "depth": 1},
    "model.decoder": {"depths": [1, 1]},
    "train.epochs": 2,
    "train.batch_size": 4,
    "register.floors": {"image_auroc_total": 0.0},
    "register.review_gallery": 0,  # seconds per promote stage; test_review_cli.py turns it on where it checks it
    # small serving limits, so the tests can exceed them with small requests
    "serve.max_image_bytes": 300_000,
    "serve.max_image_pixels": 1_000_000,
    "serve.max_batch": 4,
}

# Settings of the developer's shell that must not leak into the project's tools.
_DROP = ("MLFLOW_", "PREFECT_", "AWS_", "GLCF_", "DVC_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def clean_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of the project's tools: this venv first on PATH, nothing from outside servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env |= {
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


def set_params(path: Path, overrides: Mapping[str, Any]) -> None:
    """Write dotted overrides into a params file (nested mappings are replaced whole)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, timeout=120)


@dataclass
class TinyProject:
    """A project folder with its own git repository, DVC pipeline and MLflow store (``mlflow.db``)."""

    root: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    repro_output: str = ""  # what the first ``dvc repro`` printed (stdout, then stderr)

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def run(self, *args: str, timeout: float = 900, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        """Run a command in the project folder; on failure the message holds its output's tail."""
        proc = subprocess.run(
            list(args), cwd=self.root, env=self.env | env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            tail = (proc.stdout[-3000:] + "\n--- stderr ---\n" + proc.stderr[-6000:]).strip()
            pytest.fail(f"{' '.join(args)} exited with {proc.returncode}:\n{tail}")
        return proc

    def timed(self, name: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        proc = self.run(*args, **kwargs)
        self.timings[name] = round(time.monotonic() - t0, 1)
        return proc

    def set_params(self, overrides: Mapping[str, Any]) -> None:
        set_params(self.params_file, overrides)

    def client(self) -> Any:
        """An MLflow client of this project's store (no global tracking URI is set)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def download_model(self, name: str, alias_or_version: str, dst: Path) -> Path:
        """Download a registered version's model folder from this project's store.

        Resolved with an explicit client, then downloaded from the logged model's own location:
        ``mlflow.artifacts.download_artifacts("models:/...", registry_uri=...)`` resolves the name
        with the default registry (the working folder's ``mlflow.db``) whatever it is given.
        """
        import mlflow

        client = self.client()
        if alias_or_version.isdigit():
            mv = client.get_model_version(name, alias_or_version)
        else:
            mv = client.get_model_version_by_alias(name, alias_or_version)
        model_id = mv.model_id or mv.source.removeprefix("models:/")  # the SQL store leaves model_id empty
        location = client.get_logged_model(model_id).artifact_location
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst)))

    def registry_state(self, name: str) -> tuple[list[str], dict[str, str]]:
        """Versions and aliases of a registered model (empty when it does not exist)."""
        client = self.client()
        versions = sorted((mv.version for mv in client.search_model_versions(f"name = '{name}'")), key=int)
        if not versions:
            return [], {}
        return [str(v) for v in versions], {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}

    def params(self) -> Any:
        from pipelines.params import load_params

        return load_params(self.params_file)

    def clone(self, dest: Path) -> TinyProject:
        """A full copy (git, DVC cache, outputs, ``mlflow.db``) to change without touching this one.

        The copy's MLflow store still lists this project's artifact folder for the experiments it
        already holds (MLflow stores absolute artifact locations), so new runs of those experiments
        write their artifacts there; run ids keep them apart.
        """
        shutil.copytree(self.root, dest, symlinks=True)
        return TinyProject(dest, clean_env(dest))


def build_project(dest: Path, overrides: Mapping[str, Any] = TINY) -> TinyProject:
    """Copy the repository's working tree into ``dest``, apply ``overrides`` and commit it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # listed but deleted in the work tree: skip
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    set_params(dest / "params.yaml", overrides)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "config", "user.email", "tests@glcf.invalid")
    _git(dest, "config", "user.name", "glcf tests")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "tiny project")
    return TinyProject(dest, clean_env(dest))


_BUILT: dict[str, TinyProject] = {}


def shared_tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """The tiny project after one ``dvc repro``, built once per test process.

    Each test module's session fixture calls this (pytest would build a fixture imported into
    several modules once per module), so the whole session shares one project.
    """
    if "tiny" not in _BUILT:
        root = tmp_path_factory.mktemp("tiny-project")
        t0 = time.monotonic()
        project = build_project(root)
        project.timings["copy"] = round(time.monotonic() - t0, 1)
        proc = project.timed("dvc_repro", "dvc", "repro")
        project.repro_output = proc.stdout + proc.stderr
        _BUILT["tiny"] = project
    return _BUILT["tiny"]
