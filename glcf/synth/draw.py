"""Drawing primitives of the LOCO-like generator: coordinate frame, colour helpers, a PIL pen that
draws colours or silhouettes, and binary morphology for masks.

Design coordinates: every drawing is laid out on a 256x192 design canvas, scaled uniformly to the
image and centred (other aspect ratios show more background). Drawing happens at ``SUPERSAMPLE``
times the image size and is reduced afterwards, which anti-aliases edges and masks alike. PIL's
ImageDraw does the drawing; only what it lacks (silhouette mode, drop shadows) is added here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from scipy import ndimage

__all__ = [
    "DESIGN_H",
    "DESIGN_W",
    "RGB",
    "SUPERSAMPLE",
    "Frame",
    "Pen",
    "dilate",
    "erode",
    "jitter_rgb",
    "shade",
    "turn",
]

DESIGN_W, DESIGN_H = 256, 192
SUPERSAMPLE = 2

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
        self.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, rgb, radius, outline, lw)

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
