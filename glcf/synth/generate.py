"""Write a deterministic LOCO-like dataset in the MVTec LOCO AD layout (``glcf generate``).

Per category ``C`` under the output root ``R``::

    R/C/train/good/000.png ...                  R/C/validation/good/000.png ...
    R/C/test/{good,logical_anomalies,structural_anomalies}/000.png ...
    R/C/ground_truth/{logical,structural}_anomalies/<stem>/000.png, 001.png ...  (one PNG per region)
    R/C/defects_config.json                     R/C/generation.json  (generator record, our extra)
    R/C/defect_types.json  (our extra: group, kind and ``relational`` flag of every defect)

Ground-truth PNGs are single-channel 8-bit, 0 outside and the defect's ``pixel_value`` inside, as in
MVTec LOCO AD (Bergmann et al., IJCV 2022). Files are PNGs written by Pillow with a fixed compression
level and no metadata, so the same config gives the same bytes. A category folder is written to a
hidden sibling first and swapped in at the end: an interrupted run leaves the old data untouched.
A non-empty folder that this generator did not write is never replaced unless ``force`` is given.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from glcf.synth.categories import CATEGORIES
from glcf.synth.config import GeneratorConfig
from glcf.synth.sample import SPLITS, defect_for, image_key, make_sample

__all__ = ["GENERATOR_NAME", "GENERATOR_VERSION", "MARKER", "CategoryReport", "GenerationReport", "generate"]

logger = logging.getLogger(__name__)

GENERATOR_NAME = "glcf.synth"
GENERATOR_VERSION = "1.0"  # bump when the same config would give different images
MARKER = "generation.json"
PNG_COMPRESS_LEVEL = 3  # zlib level: 3x faster than 6 for noisy images, about 10% larger

#: one image to render: category, image size, seed, split field, index, count of the split, partial folder
_Job = tuple[str, tuple[int, int], int, str, int, int, str]


@dataclass(frozen=True)
class CategoryReport:
    """What was written for one category."""

    name: str
    path: Path
    counts: dict[str, int]
    defects: dict[str, int]


@dataclass(frozen=True)
class GenerationReport:
    """What ``generate`` wrote and how long it took."""

    out_dir: Path
    config: GeneratorConfig
    categories: tuple[CategoryReport, ...]
    seconds: float

    @property
    def images(self) -> int:
        return sum(sum(c.counts.values()) for c in self.categories)

    def summary(self) -> str:
        lines = [f"{self.images} images in {self.seconds:.1f} s under {self.out_dir}"]
        for c in self.categories:
            counts = ", ".join(f"{k} {v}" for k, v in c.counts.items())
            lines.append(f"  {c.name}: {counts}")
        return "\n".join(lines)


def _stem(index: int, count: int) -> str:
    return f"{index:0{max(3, len(str(count - 1)))}d}"


def _save_png(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _write_json(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _is_ours(folder: Path) -> bool:
    try:
        record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("generator") == GENERATOR_NAME


def _check_target(folder: Path, force: bool) -> None:
    """Refuse to replace a non-empty folder that the generator did not write (unless ``force``)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        msg = f"{folder}: exists and is not a folder; remove it or choose another output folder"
        raise FileExistsError(msg)
    if force or not any(folder.iterdir()) or _is_ours(folder):
        return
    msg = (
        f"{folder}: non-empty folder not written by the generator (no {MARKER}); "
        "refusing to overwrite it. Choose another output folder or pass --force to replace it."
    )
    raise FileExistsError(msg)


def _job(args: _Job) -> dict[str, Any]:
    """Render and write one image (and its masks); returns its record. Runs in worker processes too."""
    name, image_size, seed, split_field, index, count, tmp = args
    category = CATEGORIES[name]
    split = next(s for s in SPLITS if s.field == split_field)
    defect = defect_for(category, split.group, index) if split.group else None
    sample = make_sample(category, image_size, seed, image_key(name, split_field, index), defect)
    root = Path(tmp)
    stem = _stem(index, count)
    _save_png(sample.image, root / split.folder / f"{stem}.png")
    record: dict[str, Any] = {"file": f"{split.folder}/{stem}.png"}
    if defect is not None:
        value = category.pixel_value(defect.name)
        gt = root / "ground_truth" / split.defect_type / stem
        gt.mkdir(parents=True, exist_ok=True)
        for j, mask in enumerate(sample.masks):
            _save_png(Image.fromarray(np.where(mask, value, 0).astype(np.uint8), "L"), gt / f"{j:03d}.png")
        record.update(defect=defect.name, kind=defect.kind, regions=len(sample.masks), rules_violated=sample.violations)
    return record


def _category_record(name: str, cfg: GeneratorConfig, records: list[dict[str, Any]]) -> dict[str, Any]:
    category = CATEGORIES[name]
    return {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "category": name,
        "seed": cfg.seed,
        "image_size": list(cfg.image_size),
        "counts": cfg.counts.as_dict(),
        "rules": list(category.rules),
        "defects": [
            {"defect_name": d.name, "group": d.group, "kind": d.kind, "description": d.description}
            for d in category.defects
        ],
        "anomalies": {r["file"]: {k: v for k, v in r.items() if k != "file"} for r in records if "defect" in r},
    }


def generate(
    out_dir: str | Path,
    cfg: GeneratorConfig | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    workers: int = 1,
) -> GenerationReport:
    """Write ``cfg.categories`` in the MVTec LOCO AD layout under ``out_dir``.

    Args:
        out_dir: output root; one folder per category is created or replaced in it.
        cfg: generator settings (``GeneratorConfig()`` when ``None``).
        progress: show a tqdm progress bar.
        force: also replace category folders that the generator did not write.
        workers: processes that render images (the output does not depend on it).

    Returns:
        A ``GenerationReport``.

    Raises:
        FileExistsError: when a category folder holds data the generator did not write.
        ValueError: for a bad ``workers`` value.
    """
    cfg = cfg or GeneratorConfig()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        msg = f"workers: must be a positive integer, got {workers!r}"
        raise ValueError(msg)
    out = Path(out_dir)
    for name in cfg.categories:
        _check_target(out / name, force)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    temps = {name: _partial_folder(out, name, cfg) for name in cfg.categories}
    records = _render_all(_jobs(cfg, temps), workers, progress, temps)
    reports = []
    n = cfg.counts.total
    for i, name in enumerate(cfg.categories):  # records come in job order: category by category
        reports.append(_finish_category(out, name, cfg, temps[name], records[i * n : (i + 1) * n]))
    return GenerationReport(out, cfg, tuple(reports), time.perf_counter() - start)


def _partial_folder(out: Path, name: str, cfg: GeneratorConfig) -> Path:
    """The hidden sibling a category is written to, emptied, with the folders of its non-empty splits."""
    counts = cfg.counts.as_dict()
    tmp = out / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    for split in SPLITS:
        if counts[split.field]:  # an anomaly type with no images gets no folder, as LOCO readers expect
            (tmp / split.folder).mkdir(parents=True)
            if split.group:
                (tmp / "ground_truth" / split.defect_type).mkdir(parents=True)
    return tmp


def _jobs(cfg: GeneratorConfig, temps: dict[str, Path]) -> list[_Job]:
    """One job per image: category by category, split by split, index by index."""
    counts = cfg.counts.as_dict()
    return [
        (name, cfg.image_size, cfg.seed, s.field, i, counts[s.field], str(tmp))
        for name, tmp in temps.items()
        for s in SPLITS
        for i in range(counts[s.field])
    ]


def _render_all(jobs: list[_Job], workers: int, progress: bool, temps: dict[str, Path]) -> list[dict[str, Any]]:
    """Run every job (in ``workers`` processes when more than one); records in job order.

    On any failure or interrupt the partial folders are removed before the error propagates.
    """
    bar = tqdm(total=len(jobs), desc="generate", unit="img", disable=not progress)
    records: list[dict[str, Any]] = []
    try:
        if workers == 1:
            for job in jobs:
                records.append(_job(job))
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for record in pool.map(_job, jobs, chunksize=8):
                    records.append(record)
                    bar.update()
    except BaseException:
        for tmp in temps.values():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return records


def _finish_category(
    out: Path, name: str, cfg: GeneratorConfig, tmp: Path, records: list[dict[str, Any]]
) -> CategoryReport:
    """Write the category's JSON files into its partial folder and swap it in place of ``out/name``."""
    final = out / name
    _write_json(CATEGORIES[name].defects_config(cfg.image_size), tmp / "defects_config.json")
    _write_json(CATEGORIES[name].defect_types(), tmp / "defect_types.json")
    _write_json(_category_record(name, cfg, records), tmp / MARKER)
    if final.is_dir():
        shutil.rmtree(final)
    elif final.exists():
        final.unlink()
    tmp.rename(final)
    defects: dict[str, int] = {}
    for r in records:
        if "defect" in r:
            defects[r["defect"]] = defects.get(r["defect"], 0) + 1
    logger.info("wrote %s (%d images)", final, len(records))
    return CategoryReport(name, final, cfg.counts.as_dict(), defects)
