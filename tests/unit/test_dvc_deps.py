"""Every stage of ``dvc.yaml`` depends on all the project code it runs.

A stage runs ``glcf stage <name> <category>``: the ``glcf`` console script (``pyproject.toml``), then
the stage's module (dispatched by name). The project modules it can load are the closure of their
imports, function-level imports included (the stages import lazily); each module's file must lie
under one of the stage's declared dependencies, else an edit of it would leave ``dvc status`` clean.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("glcf", "pipelines")


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(name: str, tree: ast.AST) -> set[str]:
    """Project modules named by the import statements anywhere in a module (parent packages included)."""
    package = name if _module_file(name).name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] in PACKAGES:
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in found if _module_file(m) is not None}


def code_closure(entries: list[str]) -> set[Path]:
    """Files of every project module the entry modules can import, transitively."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        assert path is not None, f"no module {name!r} in the project"
        todo.extend(_imported(name, ast.parse(path.read_text(encoding="utf-8"))) - seen)
    return {_module_file(m) for m in seen}


def console_script_module() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    return scripts["glcf"].split(":")[0]


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_all_the_code_it_runs(stage: str) -> None:
    spec = STAGES[stage]["do"]
    assert spec["cmd"] == f"glcf stage {stage} ${{item}}"
    deps = [ROOT / d for d in spec.get("deps", []) if "${" not in d]
    code = code_closure([console_script_module(), f"pipelines.stages.{stage}"])
    assert len(code) > 20  # the closure really followed the imports (the CLI alone loads dozens of modules)
    uncovered = sorted(str(p.relative_to(ROOT)) for p in code if not any(p.is_relative_to(d) for d in deps))
    assert not uncovered, f"dvc.yaml: stage {stage} runs code it does not depend on: {uncovered}"


def test_the_closure_follows_function_level_imports() -> None:
    """The check above would miss the model code if lazy imports were not followed."""
    code = code_closure(["pipelines.stages.train"])
    assert ROOT / "glcf" / "inference" / "smoothing.py" in code
    assert ROOT / "glcf" / "config.py" in code


def test_dvc_yaml_declares_every_file_category_paths_names() -> None:
    """The stages write where ``CategoryPaths`` says; ``dvc.yaml`` must track the same files."""
    from pipelines.params import CategoryPaths, load_params

    params = load_params(ROOT / "params.yaml")
    category = params.data.categories[0]
    paths = params.category_paths(category, Path())

    def render(entry: str | dict) -> str:
        text = entry if isinstance(entry, str) else next(iter(entry))
        for key, value in vars(params.paths).items():
            text = text.replace(f"${{paths.{key}}}", value)
        return text.replace("${item}", category)

    declared = {
        render(entry)
        for stage in STAGES.values()
        for section in ("outs", "metrics", "plots")
        for entry in stage["do"].get(section, [])
    }
    folders = {"prepared", "model_dir", "report_dir", "resume_dir"}  # hold outputs, are none
    named = {
        str(getattr(paths, name))
        for name, value in vars(CategoryPaths).items()
        if isinstance(value, property) and name not in folders
    }
    assert named - declared == set()
    written_by_name = {f"{paths.report_dir}/per_image.csv", f"{paths.report_dir}/review.md"}
    assert declared - named == written_by_name


def test_the_train_stage_reruns_when_what_the_memories_hold_changes() -> None:
    """Training fills the memories, so every scoring key that decides what they hold is a train param."""
    from glcf.config import MEMORY_FILL_KEYS

    declared = set(STAGES["train"]["do"]["params"])
    assert {f"model.scoring.{key}" for key in MEMORY_FILL_KEYS} - declared == set()
