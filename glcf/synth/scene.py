"""Scene description, drawing frame and the category interface of the LOCO-like generator.

A *scene* is a list of parts (what lies where, in which colour) plus a few global attributes. A
category samples normal scenes, turns a scene into a logical anomaly by editing it (so that every
part still looks normal locally; only the whole scene breaks a rule, MVTec LOCO AD's definition),
renders a scene with PIL and checks its rules on the scene itself. Structural anomalies are painted
on the rendered image (``effects.py``). Drawing happens at ``SUPERSAMPLE`` times the image size and
is reduced afterwards, which anti-aliases edges and masks alike.

Design coordinates: every drawing is laid out on a 256x192 design canvas, scaled uniformly to the
image and centred (other aspect ratios show more background).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from scipy import ndimage

__all__ = [
    "DESIGN_H",
    "DESIGN_W",
    "LOGICAL_KINDS",
    "STRUCTURAL_KINDS",
    "SUPERSAMPLE",
    "Category",
    "DefectSpec",
    "Frame",
    "Part",
    "Pen",
    "Region",
    "Scene",
    "jitter_rgb",
    "shade",
    "turn",
]

DESIGN_W, DESIGN_H = 256, 192
SUPERSAMPLE = 2

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

RGB = tuple[int, int, int]


def jitter_rgb(rgb: RGB, rng: np.random.Generator, amount: int = 6, tint: int = 2) -> RGB:
    """A colour near ``rgb``: brightness within ``amount`` levels, each channel within ``tint`` more.

    Normal colour variation: mostly brighter/darker, barely a change of hue.
    """
    common = int(rng.integers(-amount, amount + 1))
    noise = rng.integers(-tint, tint + 1, size=3).tolist()
    return tuple(min(255, max(0, c + common + n)) for c, n in zip(rgb, noise, strict=True))  # type: ignore[return-value]


def shade(rgb: RGB, factor: float) -> RGB:
    """Darker (``factor < 1``) or lighter (``> 1``) version of a colour."""
    if factor <= 1:
        return tuple(int(c * factor) for c in rgb)  # type: ignore[return-value]
    return tuple(int(c + (255 - c) * (factor - 1)) for c in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class Frame:
    """Maps design coordinates (256x192) onto the supersampled canvas of one image size.

    The design is scaled uniformly by ``k`` and centred, so shapes keep their proportions at any
    aspect ratio (extra width or height shows more background).
    """

    width: int
    height: int
    ss: int = SUPERSAMPLE

    @property
    def canvas_size(self) -> tuple[int, int]:
        return self.width * self.ss, self.height * self.ss

    @property
    def k(self) -> float:
        """Canvas pixels per design unit."""
        return min(self.width / DESIGN_W, self.height / DESIGN_H) * self.ss

    def xy(self, x: float, y: float) -> tuple[float, float]:
        cw, ch = self.canvas_size
        return cw / 2 + (x - DESIGN_W / 2) * self.k, ch / 2 + (y - DESIGN_H / 2) * self.k

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        """A rectangle given by its design corners."""
        return [*self.xy(x0, y0), *self.xy(x1, y1)]

    def rect(self, cx: float, cy: float, w: float, h: float) -> list[float]:
        """A rectangle of design size ``w x h`` centred on a design point."""
        return self.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def local(
        self, cx: float, cy: float, pts: list[tuple[float, float]], angle: float = 0.0
    ) -> list[tuple[float, float]]:
        """Canvas points of object-local design points (relative to the centre) rotated by ``angle`` degrees."""
        return [self.xy(*turn(cx, cy, px, py, angle)) for px, py in pts]


def turn(cx: float, cy: float, px: float, py: float, angle: float) -> tuple[float, float]:
    """The design point at offset ``(px, py)`` from ``(cx, cy)`` after rotating the offset by ``angle`` degrees."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return cx + px * c - py * s, cy + px * s + py * c


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

    def clone(self) -> Scene:
        return copy.deepcopy(self)


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
    """

    name: str
    group: Literal["logical", "structural"]
    kind: str
    saturation: float
    relative: bool
    description: str

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


class Pen:
    """ImageDraw wrapper in design coordinates that draws colours, or silhouettes.

    Args:
        image: the canvas (``RGB`` for colour, ``L`` for silhouettes).
        frame: the coordinate frame.
        mode: ``rgb`` draws colours; ``mask`` draws every shape in white, shadows included; ``surface``
            is ``mask`` without shadows (the surface on which a structural defect may be painted).
    """

    def __init__(self, image: Image.Image, frame: Frame, mode: Literal["rgb", "mask", "surface"] = "rgb") -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.f = frame
        self.mode = mode

    def ink(self, rgb: RGB | None) -> Any:
        if rgb is None:
            return None
        return rgb if self.mode == "rgb" else 255

    def width(self, w: float) -> int:
        return max(1, round(w * self.f.k))

    def ellipse(self, cx: float, cy: float, w: float, h: float, rgb: RGB, outline: RGB | None = None, lw: float = 0):
        self.draw.ellipse(
            self.f.rect(cx, cy, w, h), fill=self.ink(rgb), outline=self.ink(outline), width=self.width(lw)
        )

    def rect(
        self,
        cx: float,
        cy: float,
        w: float,
        h: float,
        rgb: RGB,
        radius: float = 0,
        outline: RGB | None = None,
        lw: float = 0,
    ) -> None:
        self.draw.rounded_rectangle(
            self.f.rect(cx, cy, w, h),
            radius=radius * self.f.k,
            fill=self.ink(rgb),
            outline=self.ink(outline),
            width=self.width(lw) if outline else 0,
        )

    def box(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        rgb: RGB,
        radius: float = 0,
        outline: RGB | None = None,
        lw: float = 0,
    ) -> None:
        self.draw.rounded_rectangle(
            self.f.box(x0, y0, x1, y1),
            radius=radius * self.f.k,
            fill=self.ink(rgb),
            outline=self.ink(outline),
            width=self.width(lw) if outline else 0,
        )

    def poly(
        self,
        cx: float,
        cy: float,
        pts: list[tuple[float, float]],
        rgb: RGB,
        angle: float = 0.0,
        outline: RGB | None = None,
    ) -> None:
        self.draw.polygon(self.f.local(cx, cy, pts, angle), fill=self.ink(rgb), outline=self.ink(outline))

    def line(self, pts: list[tuple[float, float]], rgb: RGB, lw: float) -> None:
        """A polyline through design points (stretched layout coordinates) with round joints."""
        self.draw.line([self.f.xy(x, y) for x, y in pts], fill=self.ink(rgb), width=self.width(lw), joint="curve")
        r = lw * self.f.k / 2
        for x, y in (pts[0], pts[-1]):
            X, Y = self.f.xy(x, y)
            self.draw.ellipse([X - r, Y - r, X + r, Y + r], fill=self.ink(rgb))

    def shadow(
        self,
        cx: float,
        cy: float,
        w: float,
        h: float,
        offset: float = 2.5,
        strength: float = 0.55,
        radius: float | None = None,
    ) -> None:
        """A soft-edged drop shadow under an object (colour mode darkens what is beneath)."""
        if self.mode == "surface":
            return
        box = self.f.rect(cx + offset, cy + offset, w, h)
        if self.mode == "mask":
            self.draw.rounded_rectangle(
                box, radius=(radius if radius is not None else min(w, h) / 2) * self.f.k, fill=255
            )
            return
        layer = Image.new("L", self.image.size, 0)
        ImageDraw.Draw(layer).rounded_rectangle(
            box, radius=(radius if radius is not None else min(w, h) / 2) * self.f.k, fill=round(255 * strength)
        )
        x0, y0, x1, y1 = (int(v) for v in box)
        pad = max(2, round(1.5 * self.f.k))
        crop = (
            max(0, x0 - 2 * pad),
            max(0, y0 - 2 * pad),
            min(self.image.width, x1 + 2 * pad),
            min(self.image.height, y1 + 2 * pad),
        )
        alpha = layer.crop(crop).filter(ImageFilter.BoxBlur(pad))
        region = self.image.crop(crop)
        dark = Image.new("RGB", region.size, (0, 0, 0))
        self.image.paste(Image.composite(dark, region, alpha), crop[:2])


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
        """Edit ``scene`` in place into the logical anomaly ``defect``; return its ground-truth regions."""
        raise NotImplementedError

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

    def draw_ellipse(self, pen: Pen, part: Part) -> None:
        pen.ellipse(part.x, part.y, part.w, part.h, part.rgb)

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


def _morph(mask: Image.Image, radius: float, grow: bool) -> Image.Image:
    size = 2 * round(radius) + 1
    if size <= 1:
        return mask
    bbox = mask.getbbox() if grow else ImageChops.invert(mask).getbbox()
    if bbox is None:  # nothing to grow (or, eroding, nothing to shrink into)
        return mask
    pad = size // 2 + 1
    x0, y0 = max(0, bbox[0] - pad), max(0, bbox[1] - pad)
    x1, y1 = min(mask.width, bbox[2] + pad), min(mask.height, bbox[3] + pad)
    arr = np.asarray(mask).copy()
    window = arr[y0:y1, x0:x1]
    fn = ndimage.maximum_filter if grow else ndimage.minimum_filter
    arr[y0:y1, x0:x1] = fn(window, size=size, mode="nearest")
    return Image.fromarray(arr, "L")


def dilate(mask: Image.Image, radius: float) -> Image.Image:
    """Grow a binary ``L`` mask by ``radius`` canvas pixels (square window, computed on the mask's bounding box)."""
    return _morph(mask, radius, grow=True)


def erode(mask: Image.Image, radius: float) -> Image.Image:
    """Shrink a binary ``L`` mask by ``radius`` canvas pixels."""
    return _morph(mask, radius, grow=False)
