"""Stage ``prepare``: validate the layout and write a manifest with file hashes and splits.

The manifest fixes which image is in which split (train, the held-out normal images used for
calibration, test) and hashes every image and mask, so that the model registry can tell whether two
models were measured on the same frozen test split (``hashes.test``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pipelines.io import sha256_file, sha256_json, write_json
from pipelines.params import CategoryPaths, PipelineParams
from pipelines.stages.common import read_data

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PrepareResult:
    """The manifest written and its hashes."""

    manifest: Path
    counts: dict[str, Any]
    hashes: dict[str, str]


def run_prepare(params: PipelineParams, paths: CategoryPaths, *, progress: bool = True) -> PrepareResult:
    """Check every image (decoded in full) and write ``<paths.prepared>/<category>/manifest.json``."""
    data = read_data(params, paths, check="decode")
    base = data.path
    total = sum(len(getattr(data, s)) for s in ("train", "validation", "test"))
    bar = tqdm(total=total, desc=f"hash {paths.category}", unit="img", disable=not progress, leave=False)

    def entry(sample: Any) -> dict[str, Any]:
        bar.update()
        item = {
            "path": sample.path.relative_to(base).as_posix(),
            "sha256": sha256_file(sample.path),
            "label": sample.label,
            "type": sample.anomaly_type,
            "kind": sample.kind,
            "size": list(sample.size),
        }
        if sample.mask_paths:
            item["masks"] = [
                {"path": m.relative_to(base).as_posix(), "sha256": sha256_file(m)} for m in sample.mask_paths
            ]
        return item

    splits = {name: [entry(s) for s in getattr(data, name)] for name in ("train", "validation", "test")}
    bar.close()
    defects = [d.to_dict() for d in data.defects.values()]
    hashes = {
        "train": sha256_json(splits["train"]),
        "validation": sha256_json(splits["validation"]),
        "test": sha256_json({"test": splits["test"], "defects": defects}),
    }
    hashes["data"] = sha256_json(hashes)
    manifest = {
        "version": MANIFEST_VERSION,
        "category": paths.category,
        "format": data.format,
        "validation_source": data.validation_source,
        "summary": data.summary(),
        "defects": defects,
        "hashes": hashes,
        "splits": splits,
    }
    write_json(paths.manifest, manifest)
    counts = {k: v for k, v in data.summary().items() if k != "defects"}
    split_sizes = f"{counts['train']} train, {counts['validation']} validation, {counts['test']} test images"
    logger.info("%s: %s -> %s", paths.category, split_sizes, paths.manifest.relative_to(paths.root))
    return PrepareResult(paths.manifest, counts, hashes)
