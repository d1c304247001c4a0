"""One generated image: scene -> optional anomaly -> rendering -> lighting and noise, with its masks.

Every image has its own random streams, derived from ``(root seed, category, split, index)`` with
``numpy.random.SeedSequence`` spawn keys: the scene, the anomaly and the photometric finish draw
from three independent generators. So changing one split's count never changes another image, and
``make_sample(..., apply_defect=False)`` renders the exact defect-free twin of an anomalous image
(same scene, same lighting, same noise), which the tests use to prove that the masks cover what the
anomaly changed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageChops

from glcf.synth.draw import Frame
from glcf.synth.effects import finish, finish_mask
from glcf.synth.painters import PAINTERS
from glcf.synth.scene import Category, DefectSpec, Part, Scene

__all__ = ["SPLITS", "Sample", "SplitSpec", "defect_for", "image_key", "make_sample"]

MIN_DEFECT_SIDE = 10.0  # a structural defect changes at least (10 design units)^2 of the image
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class SplitSpec:
    """A split of the LOCO layout: config field, folder and which anomalies it holds."""

    field: str
    folder: str
    group: Literal["logical", "structural"] | None = None

    @property
    def defect_type(self) -> str:
        """The folder name under ``ground_truth`` (``logical_anomalies`` ...)."""
        return self.folder.split("/")[-1]


SPLITS: tuple[SplitSpec, ...] = (
    SplitSpec("train", "train/good"),
    SplitSpec("validation", "validation/good"),
    SplitSpec("test_good", "test/good"),
    SplitSpec("test_logical", "test/logical_anomalies", "logical"),
    SplitSpec("test_structural", "test/structural_anomalies", "structural"),
)


@dataclass
class Sample:
    """A rendered image with its ground truth.

    Attributes:
        image: RGB image at the configured size.
        masks: one boolean ``[H, W]`` array per defect region (empty for normal images).
        defect: the anomaly, or ``None``.
        scene: the scene description (after a logical edit).
        violations: the category's rule check of ``scene``.
    """

    image: Image.Image
    masks: list[np.ndarray] = field(default_factory=list)
    defect: DefectSpec | None = None
    scene: Scene | None = None
    violations: list[str] = field(default_factory=list)


def image_key(category: str, split: str, index: int) -> tuple[int, int, int]:
    """Spawn key of one image; CRC-32 of the name keeps it independent of the category order."""
    split_id = [s.field for s in SPLITS].index(split)
    return zlib.crc32(category.encode("utf-8")), split_id, index


def defect_for(category: Category, group: str, index: int) -> DefectSpec:
    """The anomaly of the ``index``-th image of a group: the category's defects in turn (balanced)."""
    specs = category.defects_of(group)
    return specs[index % len(specs)]


def _streams(seed: int, key: tuple[int, ...]) -> tuple[np.random.Generator, ...]:
    return tuple(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*key, j))) for j in range(3))


def visible_surface(category: Category, scene: Scene, targets: list[Part], frame: Frame) -> Image.Image:
    """Where the targets can be seen: each target's surface less everything drawn after it."""
    order = sorted(scene.parts, key=lambda p: p.z)
    surface = Image.new("L", frame.canvas_size, 0)
    for target in targets:
        after = order[[id(p) for p in order].index(id(target)) + 1 :]
        own = category.silhouette([target], frame, "surface")
        if after:
            own = ImageChops.subtract(own, category.silhouette(after, frame, "surface"))
        surface = ImageChops.lighter(surface, own)
    return surface


def make_sample(
    category: Category,
    image_size: tuple[int, int],
    seed: int,
    key: tuple[int, ...],
    defect: DefectSpec | None = None,
    *,
    apply_defect: bool = True,
) -> Sample:
    """Render one image of ``category`` (and its defect's masks) from its own random streams.

    Args:
        category: the product category.
        image_size: ``(width, height)``.
        seed: root seed.
        key: the image's spawn key (``image_key``).
        defect: the anomaly to make, or ``None`` for a normal image.
        apply_defect: ``False`` renders the defect-free twin of the same image.

    Raises:
        RuntimeError: when an anomaly's region came out empty (a generator bug).
    """
    frame = Frame(*image_size)
    scene_rng, defect_rng, photo_rng = _streams(seed, key)
    scene = category.sample_scene(scene_rng)
    regions = []
    if defect is not None and apply_defect and defect.group == "logical":
        regions = [category.region_mask(r, frame) for r in category.apply_logical(scene, defect.name, defect_rng)]
    canvas = category.render(scene, frame)
    if defect is not None and apply_defect and defect.group == "structural":
        targets = category.structural_targets(scene, defect.name, defect_rng)
        surface = visible_surface(category, scene, targets, frame)
        exclude = tuple(id(t) for t in targets)
        painter = PAINTERS[defect.painter or defect.kind]
        min_area = (MIN_DEFECT_SIDE * frame.k) ** 2
        for _ in range(MAX_ATTEMPTS):  # a defect that barely lands on its surface is painted again elsewhere
            painted = canvas.copy()
            region = painter(painted, surface, frame, defect_rng, lambda: category.render(scene, frame, exclude))
            if np.count_nonzero(np.asarray(region)) >= min_area:
                break
        canvas, regions = painted, [region]
    masks = [finish_mask(r, frame) for r in regions]
    if defect is not None and apply_defect and (not masks or not all(m.any() for m in masks)):
        msg = f"{category.name}: defect {defect.name!r} of image {key} produced an empty region"
        raise RuntimeError(msg)
    image = finish(canvas, frame, photo_rng)
    return Sample(image, masks, defect if apply_defect else None, scene, category.check_rules(scene))
