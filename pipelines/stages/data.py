"""Stage ``data``: generate the embedded default category, or import one from ``data.root``.

The output ``<paths.raw>/<category>`` is a DVC-tracked folder. The stage runs on every ``dvc repro``
(``always_changed``) and only rewrites files whose bytes changed, so an unchanged source leaves the
output's hash, and every later stage, untouched; a changed source is picked up without ``-f``.
"""

from __future__ import annotations

import filecmp
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from pipelines.params import CategoryPaths, PipelineParams

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataResult:
    """Where the category's data now is and how much of it changed."""

    path: Path
    source: str
    files: int
    copied: int
    removed: int


def sync_tree(src: Path, dst: Path, *, progress: bool = True) -> tuple[int, int, int]:
    """Make ``dst`` an exact copy of ``src``, writing only files whose content differs.

    Returns:
        (files in src, files copied, files removed from dst).
    """
    files = sorted(p for p in src.rglob("*") if p.is_file())
    copied = 0
    for path in tqdm(files, desc=f"sync {dst.name}", unit="file", disable=not progress, leave=False):
        target = dst / path.relative_to(src)
        if target.is_file() and filecmp.cmp(path, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        copied += 1
    wanted = {dst / p.relative_to(src) for p in files}
    removed = 0
    if dst.exists():
        for path in sorted(dst.rglob("*"), reverse=True):
            if path.is_file() and path not in wanted:
                path.unlink()
                removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return len(files), copied, removed


def run_data(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> DataResult:
    """Generate (``data.root: null``) or import (``data.root: <dataset root>``) one category."""
    if params.data.root is None:
        from glcf.synth import GeneratorConfig, generate

        cfg = GeneratorConfig.from_dict({**params.data.generator, "categories": [paths.category]})
        paths.data.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=paths.data.parent, prefix=f".{paths.category}-") as tmp:
            generate(tmp, cfg, progress=progress)
            counts = sync_tree(Path(tmp) / paths.category, paths.data, progress=progress)
        source = f"generator seed {cfg.seed}"
    else:
        src = Path(params.data.root).expanduser()
        if not src.is_absolute():
            src = paths.root / src
        src = src / paths.category
        if not src.is_dir():
            msg = f"data.root: category folder {src} does not exist (data.categories lists {paths.category!r})"
            raise FileNotFoundError(msg)
        counts = sync_tree(src, paths.data, progress=progress)
        source = str(src)
    files, copied, removed = counts
    where = paths.data.relative_to(paths.root)
    logger.info(
        "%s: %d files from %s (%d written, %d removed) -> %s", paths.category, files, source, copied, removed, where
    )
    return DataResult(paths.data, source, files, copied, removed)
