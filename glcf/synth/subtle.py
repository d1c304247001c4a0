"""Subtle structural painters: small and low-contrast defects, visible only on a close look.

A faint stain, a hairline crack and a shallow dent, which a category picks with ``DefectSpec.painter``:
they measure resolution and local precision rather than the detection of big blobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from glcf.synth.draw import Frame, dilate
from glcf.synth.effects import contrast_ink, crack_branch, crack_trunk, pick_point, stamp

__all__ = ["faint_stain", "hairline_crack", "shallow_dent"]


def _shift(canvas: Image.Image, box: tuple[int, int, int, int], delta: np.ndarray) -> None:
    """Add ``delta`` (``[h, w]`` or ``[h, w, 3]`` grey levels) to the canvas inside ``box``."""
    x0, y0, x1, y1 = box
    arr = np.asarray(canvas, dtype=np.float32).copy()
    arr[y0:y1, x0:x1] += delta if delta.ndim == 3 else delta[..., None]
    canvas.paste(Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB"))


def _window(canvas: Image.Image, x: float, y: float, r: float) -> tuple[int, int, int, int]:
    """The canvas box around a disc of radius ``r`` (clipped to the canvas)."""
    w, h = canvas.size
    return max(0, int(x - r - 2)), max(0, int(y - r - 2)), min(w, int(x + r + 3)), min(h, int(y + r + 3))


def _region(canvas: Image.Image, box: tuple[int, int, int, int], changed: np.ndarray) -> Image.Image:
    """A full-canvas 0/255 mask that is ``changed`` inside ``box``."""
    x0, y0, x1, y1 = box
    region = np.zeros((canvas.height, canvas.width), dtype=np.uint8)
    region[y0:y1, x0:x1] = changed * 255
    return Image.fromarray(region, "L")


def faint_stain(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """A soft, low-contrast blotch (a dried drop): 4-8% of the target surface (radius 8-18 design
    units), at most 12-25 levels darker (lighter on dark surfaces) with a faint brown tint."""
    k = frame.k
    area = np.count_nonzero(np.asarray(surface)) / k**2
    radius = float(np.clip(math.sqrt(rng.uniform(0.04, 0.08) * area / math.pi), 8.0, 18.0)) * k
    x, y = pick_point(surface, rng, erode_to=0.6 * radius)
    layer = Image.new("L", canvas.size, 0)
    angles = np.sort(rng.uniform(0, 2 * math.pi, 12))
    radii = radius * rng.uniform(0.65, 1.0, 12)
    ImageDraw.Draw(layer).polygon(
        [(x + r * math.cos(t), y + r * math.sin(t)) for t, r in zip(angles, radii, strict=True)], fill=255
    )
    box = _window(canvas, x, y, radius * 1.6)
    soft = layer.crop(box).filter(ImageFilter.GaussianBlur(0.3 * radius))
    alpha = np.asarray(soft, dtype=np.float32) / 255 * (np.asarray(surface.crop(box)) > 0)
    alpha /= max(float(alpha.max()), 1e-6)
    under = np.asarray(canvas.crop(box), dtype=np.float32)[alpha > 0.5].mean(axis=0)
    sign = -1.0 if float(under @ np.array([0.299, 0.587, 0.114])) > 110 else 1.0
    amount = rng.uniform(12.0, 25.0)
    tint = np.array([0.85, 0.95, 1.0] if sign > 0 else [0.8, 0.95, 1.0], dtype=np.float32)
    delta = sign * amount * alpha[..., None] * tint
    _shift(canvas, box, delta)
    return dilate(_region(canvas, box, alpha * amount >= 2.0), 1.0 * k)


def hairline_crack(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """A thin (about 1 design unit) wobbly line 28-45 design units long, sometimes with one short
    branch, only 30-45 levels darker than the surface (lighter on dark surfaces)."""
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=5 * k)
    angle = rng.uniform(0, 2 * math.pi)
    length = rng.uniform(28, 45) * k
    layer = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(layer)
    width = max(1, round(1.0 * k))
    trunk = crack_trunk(draw, (x, y), angle, length, 9, 0.3, width, rng)
    if rng.random() < 0.5:
        crack_branch(draw, trunk, 3, angle, (0.5, 1.0), length * 0.25, 4, 0.3, width, rng)
    under = ImageChops.multiply(dilate(layer, 3 * k), surface)  # the surface colour, not its surroundings
    colour = contrast_ink(canvas, under, int(rng.integers(30, 46)))
    return dilate(stamp(canvas, layer, colour, surface), 1.5 * k)


def shallow_dent(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """A small shallow depression 18-26 x 14-20 design units: a soft shading gradient of at most
    16-26 levels from its lit to its shaded side, no rim and no crease."""
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=8 * k)
    a, b = rng.uniform(9, 13) * k, rng.uniform(7, 10) * k
    rot, light = rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(16.0, 26.0)
    box = _window(canvas, x, y, a)
    yy, xx = np.mgrid[box[1] : box[3], box[0] : box[2]].astype(np.float32)
    dx, dy = xx - x, yy - y
    u = (dx * math.cos(rot) + dy * math.sin(rot)) / a
    v = (-dx * math.sin(rot) + dy * math.cos(rot)) / b
    r2 = u * u + v * v
    inside = (r2 < 1.0) & (np.asarray(surface.crop(box)) > 0)
    side = (dx * math.cos(light) + dy * math.sin(light)) / a
    depth = np.sqrt(np.clip(1 - r2, 0, 1))
    delta = np.where(inside, -amp * side * depth - 0.35 * amp * depth * depth, 0.0).astype(np.float32)
    _shift(canvas, box, delta)
    return dilate(_region(canvas, box, inside), 1.0 * k)
