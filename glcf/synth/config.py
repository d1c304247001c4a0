"""Settings of the synthetic LOCO-like data generator (``glcf generate``, ``params.yaml: data.generator``).

The generator writes MVTec LOCO AD layouts (Bergmann et al., IJCV 2022; docs/evaluation.md). Its settings
are plain frozen dataclasses so that ``params.yaml`` can mirror them: ``GeneratorConfig.from_dict``
rejects unknown keys and every error names the offending field (``counts.train: ...``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_CATEGORIES", "GeneratorConfig", "SplitCounts"]

#: Categories generated when none are named (every registered category).
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "breakfast_box",
    "juice_bottle",
    "pushpins",
    "splicing_connectors",
    "bead_box",
    "jam_jars",
)

MIN_SIDE, MAX_SIDE = 64, 2048
MIN_ASPECT, MAX_ASPECT = 0.9, 1.8  # width / height; the drawings are laid out for 4:3
MAX_COUNT = 100_000
#: Smallest count per split: a MVTec LOCO AD category needs train, validation and test/good images.
MINIMUM = {"train": 1, "validation": 1, "test_good": 1, "test_logical": 0, "test_structural": 0}


def _fail(path: str, message: str) -> None:
    msg = f"{path}: {message}"
    raise ValueError(msg)


def _check_count(path: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (minimum <= value <= MAX_COUNT):
        _fail(path, f"must be an integer in [{minimum}, {MAX_COUNT}], got {value!r}")


def _reject_unknown(cls: type, data: Mapping[str, Any], path: str) -> None:
    if not isinstance(data, Mapping):
        _fail(path or "generator", f"must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in sorted(map(str, data)):
        if key not in names:
            where = f"{path}.{key}" if path else key
            _fail(where, f"unknown key (known: {', '.join(names)})")


@dataclass(frozen=True)
class SplitCounts:
    """Number of images per split and category, in the MVTec LOCO AD folders.

    Attributes:
        train: ``train/good``.
        validation: ``validation/good`` (held-out normal images for calibration).
        test_good: ``test/good``.
        test_logical: ``test/logical_anomalies``.
        test_structural: ``test/structural_anomalies``.
    """

    train: int = 120
    validation: int = 24
    test_good: int = 32
    test_logical: int = 32
    test_structural: int = 32

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, path: str = "counts") -> None:
        for name, minimum in MINIMUM.items():
            _check_count(f"{path}.{name}", getattr(self, name), minimum)
        if self.test_logical + self.test_structural < 1:
            _fail(
                f"{path}.test_logical", "test_logical + test_structural must be at least 1 (LOCO needs an anomaly type)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "counts") -> SplitCounts:
        _reject_unknown(cls, data, path)
        merged = {**dataclasses.asdict(cls()), **data}
        for name, minimum in MINIMUM.items():
            _check_count(f"{path}.{name}", merged[name], minimum)
        return cls(**merged)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @property
    def total(self) -> int:
        return self.train + self.validation + self.test_good + self.test_logical + self.test_structural


@dataclass(frozen=True)
class GeneratorConfig:
    """What ``glcf generate`` writes. Same config and seed give byte-identical files.

    Attributes:
        seed: root seed; every image draws from its own ``numpy.random.SeedSequence`` derived from
            (seed, category, split, index), so changing one count never changes other images.
        image_size: ``(width, height)`` in pixels; non-square like MVTec LOCO (default 256x192).
        categories: category names from ``glcf.synth.CATEGORIES``, written in this order.
        counts: images per split (see ``SplitCounts``).
    """

    seed: int = 0
    image_size: tuple[int, int] = (256, 192)
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    counts: SplitCounts = field(default_factory=SplitCounts)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from glcf.synth.categories import CATEGORIES  # the registry imports drawing code: keep it lazy

        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (0 <= self.seed < 2**63):
            _fail("seed", f"must be a non-negative integer below 2**63, got {self.seed!r}")
        size = self.image_size
        if (
            not isinstance(size, tuple)
            or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in size)
        ):
            _fail("image_size", f"must be two integers (width, height), got {size!r}")
        if not all(MIN_SIDE <= v <= MAX_SIDE for v in size):
            _fail("image_size", f"width and height must be in [{MIN_SIDE}, {MAX_SIDE}], got {size!r}")
        if not (MIN_ASPECT <= size[0] / size[1] <= MAX_ASPECT):
            _fail("image_size", f"width/height must be in [{MIN_ASPECT}, {MAX_ASPECT}], got {size[0]}x{size[1]}")
        if not isinstance(self.categories, tuple) or not self.categories:
            _fail("categories", f"must be a non-empty list of names, got {self.categories!r}")
        for i, name in enumerate(self.categories):
            if name not in CATEGORIES:
                _fail(f"categories[{i}]", f"unknown category {name!r} (known: {', '.join(sorted(CATEGORIES))})")
        if len(set(self.categories)) != len(self.categories):
            _fail("categories", f"names must be unique, got {list(self.categories)}")
        if not isinstance(self.counts, SplitCounts):
            _fail("counts", f"must be SplitCounts, got {type(self.counts).__name__}")
        self.counts.validate()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorConfig:
        """Build from a (partial) mapping such as ``params.yaml``'s ``data.generator`` section.

        Raises:
            ValueError: naming the field, for unknown keys, wrong types or invalid values.
        """
        _reject_unknown(cls, data, "")
        kwargs: dict[str, Any] = dict(data)
        if "image_size" in kwargs:
            size = kwargs["image_size"]
            if isinstance(size, str):
                kwargs["image_size"] = parse_image_size(size)
            elif isinstance(size, list | tuple):
                kwargs["image_size"] = tuple(size)
            else:
                _fail("image_size", f"must be [width, height] or 'WxH', got {size!r}")
        if "categories" in kwargs:
            names = kwargs["categories"]
            if isinstance(names, str):
                names = [n.strip() for n in names.split(",") if n.strip()]
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                _fail("categories", f"must be a list of names, got {names!r}")
            kwargs["categories"] = tuple(names)
        if "counts" in kwargs:
            counts = kwargs["counts"]
            if not isinstance(counts, SplitCounts):
                kwargs["counts"] = SplitCounts.from_dict(counts)
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        """Plain mapping (lists, no tuples) for YAML/JSON; ``from_dict(as_dict())`` round-trips."""
        return {
            "seed": self.seed,
            "image_size": list(self.image_size),
            "categories": list(self.categories),
            "counts": self.counts.as_dict(),
        }

    def replace(self, **changes: Any) -> GeneratorConfig:
        return dataclasses.replace(self, **changes)


def parse_image_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)``.

    Raises:
        ValueError: naming ``image_size`` when the text is not ``WxH`` with integers.
    """
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        _fail("image_size", f"must look like WIDTHxHEIGHT, e.g. 256x192; got {text!r}")
    return int(parts[0]), int(parts[1])
