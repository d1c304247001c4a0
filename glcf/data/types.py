"""The data model shared by the readers, the datasets and the evaluation (docs/evaluation.md, Data layouts).

A category of any supported layout (MVTec AD, MVTec LOCO AD, folder-per-class) is read into one
``CategoryData``: three tuples of ``Sample`` (train, validation, test) and, for LOCO, the defect
table of ``defects_config.json``. Layout problems raise ``DatasetLayoutError`` listing every
problem found, each naming the file or folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "KINDS",
    "CategoryData",
    "DatasetLayoutError",
    "DefectSpec",
    "Kind",
    "Sample",
]

Kind = Literal["good", "logical", "structural", "anomaly"]
KINDS: tuple[str, ...] = ("good", "logical", "structural", "anomaly")
LOCO_TYPES: dict[str, Kind] = {
    "good": "good",
    "logical_anomalies": "logical",
    "structural_anomalies": "structural",
}


class DatasetLayoutError(ValueError):
    """A dataset folder does not follow its declared layout.

    Attributes:
        problems: one line per problem, each naming the offending file or folder.
    """

    def __init__(self, where: str | Path, problems: Iterable[str]) -> None:
        self.where = str(where)
        self.problems = list(problems)
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        lines = [f"{self.where}: {len(self.problems)} layout problem(s):", *(f"  - {p}" for p in shown)]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class DefectSpec:
    """One entry of MVTec LOCO's ``defects_config.json``.

    Attributes:
        name: ``defect_name``.
        pixel_value: the value (1..255) this defect's ground-truth PNGs hold.
        saturation_threshold: relative fraction in (0, 1] or absolute pixel count (>= 1).
        relative: ``relative_saturation``.
    """

    name: str
    pixel_value: int
    saturation_threshold: float
    relative: bool

    def saturation_area(self, defect_area: int) -> int:
        """Pixels a defect of ``defect_area`` pixels must overlap to reach sPRO 1 (Bergmann et al., IJCV 2022).

        Relative: ``int(r * area)`` (truncation, as the official script); absolute: ``min(s, area)``.
        """
        if self.relative:
            return int(self.saturation_threshold * defect_area)
        return int(min(self.saturation_threshold, defect_area))

    def to_dict(self) -> dict[str, Any]:
        return {
            "defect_name": self.name,
            "pixel_value": self.pixel_value,
            "saturation_threshold": self.saturation_threshold,
            "relative_saturation": self.relative,
        }


@dataclass(frozen=True)
class Sample:
    """One image of a split.

    Attributes:
        path: absolute path of the image file.
        label: 0 for normal, 1 for anomalous.
        anomaly_type: the folder name: ``good``, ``logical_anomalies``, ``structural_anomalies``,
            an MVTec AD defect name, or a folder-layout class name.
        kind: ``good``, ``logical``, ``structural`` (LOCO) or ``anomaly`` (MVTec AD defects and
            folder-layout abnormal classes).
        mask_paths: ground-truth files: one ``_mask.png`` (MVTec AD), one PNG per defect (LOCO),
            none for good images and for image-level-only layouts.
        size: ``(width, height)`` of the image file.
    """

    path: Path
    label: int
    anomaly_type: str
    kind: Kind
    mask_paths: tuple[Path, ...] = ()
    size: tuple[int, int] = (0, 0)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


@dataclass(frozen=True)
class CategoryData:
    """One category read from disk.

    Attributes:
        root: the dataset root that holds the category folder.
        category: the category folder name.
        format: ``mvtec``, ``loco`` or ``folder``.
        train: normal training images.
        validation: held-out normal images (LOCO ``validation/good``, a folder layout's
            ``validation``/``val`` normal class, or a seeded hold-out of ``train/good``).
        test: test images, sorted by type then file name.
        defects: LOCO defect table by pixel value (empty for other layouts).
        validation_source: where ``validation`` came from, in words.
        ignored: files found in the tree that are not used (non-image files, abnormal training
            images of a folder layout); each was logged as a warning.
    """

    root: Path
    category: str
    format: str
    train: tuple[Sample, ...]
    validation: tuple[Sample, ...]
    test: tuple[Sample, ...]
    defects: Mapping[int, DefectSpec] = field(default_factory=dict)
    validation_source: str = ""
    ignored: tuple[Path, ...] = ()

    @property
    def path(self) -> Path:
        return self.root / self.category

    @property
    def anomaly_types(self) -> tuple[str, ...]:
        """Anomaly types present in the test split (every test folder but ``good``/the normal class)."""
        return tuple(sorted({s.anomaly_type for s in self.test if s.label == 1}))

    @property
    def has_masks(self) -> bool:
        """True when the anomalous test images carry pixel ground truth."""
        return any(s.mask_paths for s in self.test)

    def summary(self) -> dict[str, Any]:
        """Counts per split and type, for manifests and logs."""
        per_type: dict[str, int] = {}
        for s in self.test:
            per_type[s.anomaly_type] = per_type.get(s.anomaly_type, 0) + 1
        return {
            "category": self.category,
            "format": self.format,
            "train": len(self.train),
            "validation": len(self.validation),
            "validation_source": self.validation_source,
            "test": len(self.test),
            "test_per_type": per_type,
            "defects": [d.to_dict() for d in self.defects.values()],
            "ignored": len(self.ignored),
        }
