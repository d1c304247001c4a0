"""Scene description, drawing frame and the category interface of the LOCO-like generator.

A *scene* is a list of parts (what lies where, in which colour) plus a few global attributes. A
category samples normal scenes, turns a scene into a logical anomaly by editing it (so that every
part still looks normal locally; only the whole scene breaks a rule, MVTec LOCO AD's definition),
renders a scene with PIL (``draw.py``) and checks its rules on the scene itself. Structural
anomalies are painted on the rendered image (``effects.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image, ImageChops

from glcf.synth.draw import DESIGN_H, DESIGN_W, RGB, Frame, Pen, dilate

__all__ = ["LOGICAL_KINDS", "STRUCTURAL_KINDS", "Category", "DefectSpec", "Part", "Region", "Scene"]

#: The five logical anomaly kinds of the issue (MVTec LOCO AD's families of logical constraints).
LOGICAL_KINDS = (
    "wrong_count",
    "missing_or_extra_part",
    "wrong_placement",
    "wrong_colour_or_pairing",
    "wrong_proportion",
)
#: The five structural anomaly kinds.
STRUCTURAL_KINDS = ("scratch", "crack", "dent", "contamination", "broken_part")


@dataclass
class Part:
    """One drawable thing of a scene.

    Attributes:
        kind: how it is drawn (the category's ``draw_<kind>`` method, or ``rect``/``ellipse``/``box``).
        x, y: centre in design coordinates.
        w, h: size in design units.
        rgb: base colour (already jittered).
        angle: rotation in degrees.
        z: drawing order (lower first).
        attrs: anything else the category needs (palette name, cell, slots, texture seed...).
    """

    kind: str
    x: float
    y: float
    w: float
    h: float
    rgb: RGB = (0, 0, 0)
    angle: float = 0.0
    z: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scene:
    """Parts plus scene-level attributes (e.g. the flavour of a juice bottle)."""

    parts: list[Part]
    attrs: dict[str, Any] = field(default_factory=dict)

    def find(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.kind == kind]


@dataclass(frozen=True)
class Region:
    """A ground-truth region: the silhouette of ``parts`` dilated by ``margin`` design units, less
    the silhouette of ``minus`` (parts in front of it that hide it)."""

    parts: tuple[Part, ...]
    margin: float = 2.0
    minus: tuple[Part, ...] = ()


@dataclass(frozen=True)
class DefectSpec:
    """One entry of ``defects_config.json`` plus what the generator needs to make it.

    Attributes:
        name: ``defect_name``.
        group: ``logical`` or ``structural`` (the LOCO test folder).
        kind: one of ``LOGICAL_KINDS`` or ``STRUCTURAL_KINDS``.
        saturation: ``saturation_threshold``; relative: fraction of the region's area; absolute:
            pixels at the 256x192 design size (scaled with the image area when written).
        relative: ``relative_saturation``.
        description: one line for humans.
        relational: a logical anomaly in which every part is normal on its own and only the relation
            between parts far apart (same colour, same count, same level) is broken.
        painter: the structural painter of ``painters.PAINTERS`` (default: the one named ``kind``).
    """

    name: str
    group: Literal["logical", "structural"]
    kind: str
    saturation: float
    relative: bool
    description: str
    relational: bool = False
    painter: str = ""

    def type_entry(self) -> dict[str, Any]:
        """The ``defect_types.json`` object of this defect."""
        return {
            "defect_name": self.name,
            "group": self.group,
            "kind": self.kind,
            "relational": self.relational,
            "description": self.description,
        }

    def config_entry(self, pixel_value: int, image_size: tuple[int, int]) -> dict[str, Any]:
        """The ``defects_config.json`` object of this defect for images of ``image_size``."""
        if self.relative:
            threshold: float | int = self.saturation
        else:
            threshold = round(self.saturation * image_size[0] * image_size[1] / (DESIGN_W * DESIGN_H))
        return {
            "defect_name": self.name,
            "pixel_value": pixel_value,
            "saturation_threshold": threshold,
            "relative_saturation": self.relative,
        }


class Category:
    """A LOCO-like product category: its rules, defects, normal scenes, anomalies and drawing.

    Subclasses set the class attributes and implement ``sample_scene``, ``apply_logical``,
    ``structural_targets``, ``check_rules`` and one ``draw_<kind>(pen, part)`` per part kind.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    rules: ClassVar[tuple[str, ...]]
    defects: ClassVar[tuple[DefectSpec, ...]]
    background: ClassVar[RGB]

    # ---- interface -----------------------------------------------------------------------------
    def sample_scene(self, rng: np.random.Generator) -> Scene:
        raise NotImplementedError

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        """Edit ``scene`` in place into the logical anomaly ``defect``; return its ground-truth regions.

        Subclasses handle their defects and call this for any other name, which is an error.
        """
        names = ", ".join(d.name for d in self.defects_of("logical"))
        msg = f"{self.name}: unknown logical defect {defect!r} (known: {names})"
        raise ValueError(msg)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        """The parts whose surface receives the structural defect ``defect``."""
        raise NotImplementedError

    def check_rules(self, scene: Scene) -> list[str]:
        """The violated rules of ``scene`` (empty for a normal scene), read from its parts."""
        raise NotImplementedError

    # ---- shared machinery ------------------------------------------------------------------------
    def defect(self, name: str) -> DefectSpec:
        for spec in self.defects:
            if spec.name == name:
                return spec
        msg = f"{self.name}: unknown defect {name!r} (known: {', '.join(d.name for d in self.defects)})"
        raise KeyError(msg)

    def defects_of(self, group: str) -> tuple[DefectSpec, ...]:
        return tuple(d for d in self.defects if d.group == group)

    def pixel_value(self, name: str) -> int:
        """``pixel_value`` of a defect: 255, 254, ... in the order of ``defects`` (stable when appending)."""
        return 255 - [d.name for d in self.defects].index(name)

    def defects_config(self, image_size: tuple[int, int]) -> list[dict[str, Any]]:
        return [d.config_entry(self.pixel_value(d.name), image_size) for d in self.defects]

    def defect_types(self) -> list[dict[str, Any]]:
        """The ``defect_types.json`` sidecar: group, kind and whether each defect is relational."""
        return [d.type_entry() for d in self.defects]

    def draw_background(self, pen: Pen, scene: Scene) -> None:
        pen.draw.rectangle([0, 0, *pen.image.size], fill=pen.ink(self.background))

    def draw_part(self, pen: Pen, part: Part) -> None:
        getattr(self, f"draw_{part.kind}")(pen, part)

    def draw_rect(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=part.attrs.get("radius", 0))

    def draw_box(self, pen: Pen, part: Part) -> None:
        """An axis-aligned layout rectangle from (x - w/2, y - h/2) to (x + w/2, y + h/2), stretched."""
        pen.box(
            part.x - part.w / 2,
            part.y - part.h / 2,
            part.x + part.w / 2,
            part.y + part.h / 2,
            part.rgb,
            radius=part.attrs.get("radius", 0),
        )

    def render(self, scene: Scene, frame: Frame, exclude: tuple[int, ...] = ()) -> Image.Image:
        """The scene in colour on the supersampled canvas; parts whose ``id`` is in ``exclude`` are left out."""
        image = Image.new("RGB", frame.canvas_size)
        pen = Pen(image, frame)
        self.draw_background(pen, scene)
        for part in sorted(scene.parts, key=lambda p: p.z):  # stable: equal z keep list order
            if id(part) not in exclude:
                self.draw_part(pen, part)
        return image

    def silhouette(
        self,
        parts: list[Part] | tuple[Part, ...],
        frame: Frame,
        mode: Literal["mask", "surface"] = "mask",
        margin: float = 0.0,
    ) -> Image.Image:
        """Binary ``L`` canvas (0/255) of where ``parts`` lie, dilated by ``margin`` design units."""
        image = Image.new("L", frame.canvas_size, 0)
        pen = Pen(image, frame, mode)
        for part in sorted(parts, key=lambda p: p.z):
            self.draw_part(pen, part)
        return dilate(image, margin * frame.k)

    def region_mask(self, region: Region, frame: Frame) -> Image.Image:
        mask = self.silhouette(region.parts, frame, "mask", region.margin)
        if region.minus:
            mask = ImageChops.subtract(mask, self.silhouette(region.minus, frame, "surface"))
        return mask
