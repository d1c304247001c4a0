"""Defect types of a category: which defect each test image shows, and what kind of defect it is.

Per-defect scores show which branch of the model does the work: a *relational* logical anomaly
(every part normal on its own, only the relation between distant parts wrong) should be caught by
the global branch, a small scratch by the local one.

The optional sidecar ``<category>/defect_types.json`` (written by ``glcf generate``; any dataset may
carry one) describes each defect: a JSON list of
``{"defect_name": str, "group": "logical" | "structural", "relational": bool, ...}``. Without it,
the group comes from the test folder (LOCO) and ``relational`` is false.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glcf.data.images import load_defect_masks
from glcf.data.types import CategoryData, DatasetLayoutError, DefectSpec

__all__ = ["SIDECAR", "DefectType", "defect_table", "image_defects", "loco_defect_masks", "read_defect_types"]

SIDECAR = "defect_types.json"
GROUPS = ("logical", "structural", "anomaly")


@dataclass(frozen=True)
class DefectType:
    """What one defect type is.

    Attributes:
        name: the defect name (LOCO ``defect_name``, or the MVTec AD / folder-layout test folder).
        group: ``logical``, ``structural`` or ``anomaly`` (layouts that do not say).
        relational: only the relation between distant, individually normal parts is wrong.
    """

    name: str
    group: str
    relational: bool = False


def _parse_entry(entry: Any, at: str) -> DefectType:
    if not isinstance(entry, dict):
        raise DatasetLayoutError(at, [f"{at}: must be an object, got {entry!r}"])
    problems = []
    name, group, relational = entry.get("defect_name"), entry.get("group"), entry.get("relational", False)
    if not isinstance(name, str) or not name:
        problems.append(f"{at}.defect_name: must be a non-empty string, got {name!r}")
    if group not in GROUPS:
        problems.append(f"{at}.group: must be one of {', '.join(GROUPS)}, got {group!r}")
    if not isinstance(relational, bool):
        problems.append(f"{at}.relational: must be true or false, got {relational!r}")
    if problems:
        raise DatasetLayoutError(at, problems)
    return DefectType(name, group, relational)


def read_defect_types(category_dir: str | Path) -> dict[str, DefectType]:
    """The sidecar of ``category_dir`` by defect name; empty when there is none.

    Raises:
        DatasetLayoutError: an unreadable sidecar or a bad entry, naming the file and the field.
    """
    path = Path(category_dir) / SIDECAR
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetLayoutError(path, [f"{path}: not readable JSON ({e})"]) from e
    if not isinstance(entries, list):
        raise DatasetLayoutError(path, [f"{path}: must be a JSON list of defect objects"])
    types = [_parse_entry(e, f"{path}[{i}]") for i, e in enumerate(entries)]
    return {t.name: t for t in types}


def loco_defect_masks(data: CategoryData) -> list[list[tuple[np.ndarray, DefectSpec]]]:
    """Every test image's LOCO ground truth, one ``(mask, DefectSpec)`` per PNG (none for normal images)."""
    return [load_defect_masks(s, data.defects) if s.label else [] for s in data.test]


def image_defects(
    data: CategoryData, defect_masks: Sequence[Sequence[tuple[np.ndarray, DefectSpec]]] | None = None
) -> list[str]:
    """The defect name of every test image, in ``data.test`` order (``good`` for normal images).

    LOCO: the ``defect_name`` of the image's ground-truth PNGs (names joined by ``+`` when one image
    holds several defect types), from ``defect_masks`` (:func:`loco_defect_masks`) when the caller
    has read them already; other layouts: the test folder.
    """
    if data.format == "loco" and defect_masks is None:
        defect_masks = loco_defect_masks(data)
    out = []
    for i, s in enumerate(data.test):
        if not s.label:
            out.append("good")
        elif defect_masks is not None and defect_masks[i]:
            out.append("+".join(sorted({spec.name for _, spec in defect_masks[i]})))
        else:
            out.append(s.anomaly_type)
    return out


def defect_table(data: CategoryData, defects: Sequence[str]) -> dict[str, DefectType]:
    """Every defect name of ``defects`` described: from the sidecar, else from the test folders."""
    known: Mapping[str, DefectType] = read_defect_types(data.path)
    folder = {d: s.kind for d, s in zip(defects, data.test, strict=True) if s.label}
    table = {}
    for name in sorted(folder):
        group = folder[name] if folder[name] in GROUPS else "anomaly"
        table[name] = known.get(name, DefectType(name, group))
    return table
