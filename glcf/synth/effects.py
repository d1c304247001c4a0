"""Photometric finishing and structural defect painters of the LOCO-like generator.

Structural anomalies (MVTec AD / LOCO AD "structural": scratches, cracks, dents, contamination,
broken parts) are local: they change how a surface looks, not which parts a scene holds. Each painter
works on the supersampled colour canvas, restricted to a *surface* silhouette chosen by the category,
and returns the binary region it changed, which becomes the ground-truth mask. The shapes are drawn
with PIL (no library paints such defects); the randomness comes from the caller's generator. Their
small, low-contrast versions are in :mod:`glcf.synth.subtle`; :mod:`glcf.synth.painters` names them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from glcf.synth.draw import Frame, dilate, erode

__all__ = ["Painter", "broken_part", "contamination", "crack", "dent", "finish", "finish_mask", "scratch"]

Painter = Callable[[Image.Image, Image.Image, Frame, np.random.Generator, Callable[[], Image.Image]], Image.Image]


# --------------------------------------------------------------------------------------------------
# finishing: downsample, lighting, sensor noise


def finish(canvas: Image.Image, frame: Frame, rng: np.random.Generator) -> Image.Image:
    """Supersampled canvas -> final 8-bit RGB image with lighting and sensor noise.

    Normal photometric variation, kept well below the anomalies: global gain 0.93..1.07, a linear
    illumination gradient of at most +-5% across the image in a random direction, and Gaussian
    sensor noise with sigma 1.5..2.5 grey levels.
    """
    small = canvas.reduce(frame.ss)
    h, w = small.height, small.width
    gain = rng.uniform(0.93, 1.07)
    theta = rng.uniform(0.0, 2 * math.pi)
    slope = rng.uniform(0.0, 0.05)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / max(w - 1, 1) - 0.5) * math.cos(theta) + (yy / max(h - 1, 1) - 0.5) * math.sin(theta)) * 2 * slope
    sigma = rng.uniform(1.5, 2.5)
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(sigma)
    pixels = np.asarray(small, dtype=np.float32) * (np.float32(gain) * (1 + ramp))[..., None] + noise
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def finish_mask(canvas_mask: Image.Image, frame: Frame) -> np.ndarray:
    """Supersampled 0/255 mask -> boolean ``[H, W]`` at the image size (area-weighted, at least 1 pixel)."""
    small = np.asarray(canvas_mask.reduce(frame.ss))
    binary = small >= 128
    if not binary.any():  # a sliver thinner than one output pixel still marks its pixels
        binary = small > 0
    return binary


# --------------------------------------------------------------------------------------------------
# helpers


def pick_point(surface: Image.Image, rng: np.random.Generator, erode_to: float = 0.0) -> tuple[float, float]:
    """A random canvas point on the surface, preferring points at least ``erode_to`` px inside it."""
    arr = np.asarray(surface)
    if erode_to > 0:
        candidates = np.argwhere(np.asarray(erode(surface, erode_to)) > 0)
        if len(candidates):
            y, x = candidates[rng.integers(len(candidates))]
            return float(x), float(y)
    candidates = np.argwhere(arr > 0)
    if not len(candidates):
        msg = "structural defect: the target surface is empty"
        raise ValueError(msg)
    y, x = candidates[rng.integers(len(candidates))]
    return float(x), float(y)


def contrast_ink(canvas: Image.Image, where: Image.Image, amount: int) -> tuple[int, int, int]:
    """A colour ``amount`` levels darker than the surface under ``where`` (lighter on dark surfaces)."""
    arr = np.asarray(canvas, dtype=np.float32)[np.asarray(where) > 0]
    mean = arr.mean(axis=0) if len(arr) else np.array([128.0, 128.0, 128.0])
    lum = float(mean @ np.array([0.299, 0.587, 0.114]))
    sign = -1 if lum > 110 else 1
    return tuple(int(np.clip(c + sign * amount, 0, 255)) for c in mean)  # type: ignore[return-value]


def _wobbly_path(
    start: tuple[float, float], angle: float, length: float, steps: int, wobble: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    pts = [start]
    x, y = start
    for _ in range(steps):
        angle += rng.normal(0.0, wobble)
        x += math.cos(angle) * length / steps
        y += math.sin(angle) * length / steps
        pts.append((x, y))
    return pts


def stamp(
    canvas: Image.Image, layer: Image.Image, colour: tuple[int, int, int], surface: Image.Image | None
) -> Image.Image:
    """Paint ``colour`` where ``layer`` is set (and on the surface, if given); return that region (0/255)."""
    region = layer if surface is None else ImageChops.multiply(layer, surface)
    canvas.paste(colour, (0, 0), region)
    return region.point(lambda v: 255 if v > 0 else 0)


# --------------------------------------------------------------------------------------------------
# painters: (canvas, surface, frame, rng, render_without_target) -> changed region (L, 0/255)


def scratch(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """Two or three nearly parallel, slightly curved bright/dark strokes 55-95 design units long."""
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=10 * k)
    angle = rng.uniform(0, math.pi)
    length = rng.uniform(55, 95) * k
    layer = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(layer)
    normal = (-math.sin(angle), math.cos(angle))
    for i in range(int(rng.integers(2, 4))):
        off = (i - 1) * rng.uniform(3.0, 5.0) * k
        sx = x + normal[0] * off - math.cos(angle) * length / 2
        sy = y + normal[1] * off - math.sin(angle) * length / 2
        pts = _wobbly_path((sx, sy), angle, length * rng.uniform(0.75, 1.0), 12, 0.04, rng)
        draw.line(pts, fill=255, width=max(1, round(rng.uniform(2.2, 3.2) * k)), joint="curve")
    colour = contrast_ink(canvas, dilate(layer, 3 * k), int(rng.integers(90, 120)))
    return dilate(stamp(canvas, layer, colour, surface), 1.5 * k)


def crack_trunk(
    draw: ImageDraw.ImageDraw,
    centre: tuple[float, float],
    angle: float,
    length: float,
    steps: int,
    wobble: float,
    width: int,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """Draw a wobbly line of ``length`` through ``centre`` (grown both ways from it); its points."""
    half = _wobbly_path(centre, angle, length / 2, steps, wobble, rng)
    trunk = list(reversed(_wobbly_path(centre, angle + math.pi, length / 2, steps, wobble, rng)))[:-1] + half
    draw.line(trunk, fill=255, width=width, joint="curve")
    return trunk


def crack_branch(
    draw: ImageDraw.ImageDraw,
    trunk: list[tuple[float, float]],
    margin: int,
    angle: float,
    spread: tuple[float, float],
    length: float,
    steps: int,
    wobble: float,
    width: int,
    rng: np.random.Generator,
) -> None:
    """Draw one branch off ``trunk`` (not within ``margin`` points of its ends), turned by ``spread`` rad."""
    start = trunk[int(rng.integers(margin, len(trunk) - margin))]
    branch = _wobbly_path(start, angle + rng.choice([-1, 1]) * rng.uniform(*spread), length, steps, wobble, rng)
    draw.line(branch, fill=255, width=width, joint="curve")


def crack(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """A jagged, branching crack 55-85 design units long, dark on light surfaces and light on dark."""
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=8 * k)
    angle = rng.uniform(0, 2 * math.pi)
    length = rng.uniform(55, 85) * k
    layer = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(layer)
    trunk = crack_trunk(draw, (x, y), angle, length, 8, 0.5, max(1, round(2.8 * k)), rng)
    for _ in range(int(rng.integers(2, 4))):
        crack_branch(draw, trunk, 2, angle, (0.6, 1.2), length * 0.3, 5, 0.5, max(1, round(1.8 * k)), rng)
    colour = contrast_ink(canvas, dilate(layer, 3 * k), int(rng.integers(110, 140)))
    return dilate(stamp(canvas, layer, colour, surface), 1.5 * k)


def dent(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """An elliptical depression 30-40 x 20-28 design units: shaded side, bright rim, dark crease."""
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=12 * k)
    a, b = rng.uniform(15, 20) * k, rng.uniform(10, 14) * k
    rot = rng.uniform(0, math.pi)
    light = rng.uniform(0, 2 * math.pi)
    x0, y0, x1, y1 = (
        max(0, int(x - a - 2)),
        max(0, int(y - a - 2)),
        min(canvas.width, int(x + a + 3)),
        min(canvas.height, int(y + a + 3)),
    )
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - x, yy - y
    u = (dx * math.cos(rot) + dy * math.sin(rot)) / a
    v = (-dx * math.sin(rot) + dy * math.cos(rot)) / b
    r2 = u * u + v * v
    inside = r2 < 1.0
    side = (dx * math.cos(light) + dy * math.sin(light)) / a  # -1..1 across the dent
    delta = np.where(inside, -95.0 * side * np.sqrt(np.clip(1 - r2, 0, 1)) - 40.0 * (1 - r2), 0.0)
    crease = inside & (np.abs(u * math.sin(light - rot) - v * math.cos(light - rot)) < 0.12)
    delta = np.where(crease, delta - 60.0, delta)
    surf = np.asarray(surface)[y0:y1, x0:x1] > 0
    changed = inside & surf
    arr = np.asarray(canvas, dtype=np.float32).copy()
    arr[y0:y1, x0:x1] += (delta * changed)[..., None]
    canvas.paste(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"))
    region = np.zeros((canvas.height, canvas.width), dtype=np.uint8)
    region[y0:y1, x0:x1] = changed * 255
    return dilate(Image.fromarray(region, "L"), 1.0 * k)


CONTAMINANTS = ((62, 40, 24), (28, 28, 30), (96, 112, 64), (236, 236, 228), (150, 40, 120))


def contamination(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    _without: Callable[[], Image.Image],
) -> Image.Image:
    """Foreign matter: a cluster of irregular blobs or a curled fibre, 18-30 design units across.

    It lies on top of the scene, so only its position (not its extent) is restricted to the surface.
    """
    k = frame.k
    x, y = pick_point(surface, rng, erode_to=6 * k)
    layer = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.3:  # a fibre
        pts = _wobbly_path((x, y), rng.uniform(0, 2 * math.pi), rng.uniform(45, 65) * k, 16, 0.45, rng)
        draw.line(pts, fill=255, width=max(1, round(2.8 * k)), joint="curve")
    else:  # blobs
        for i in range(int(rng.integers(1, 4))):
            cx = x + (rng.normal(0, 6) * k if i else 0.0)
            cy = y + (rng.normal(0, 6) * k if i else 0.0)
            radius = rng.uniform(10, 13) * k if i == 0 else rng.uniform(4, 7) * k
            n = 11
            angles = np.sort(rng.uniform(0, 2 * math.pi, n))
            radii = radius * rng.uniform(0.6, 1.15, n)
            draw.polygon(
                [(cx + r * math.cos(t), cy + r * math.sin(t)) for t, r in zip(angles, radii, strict=True)], fill=255
            )
    # a colour far from the surface under it
    under = np.asarray(canvas, dtype=np.float32)[np.asarray(dilate(layer, 2 * k)) > 0].mean(axis=0)
    options = sorted(CONTAMINANTS, key=lambda c: -float(np.abs(np.array(c, dtype=np.float32) - under).sum()))
    colour = options[int(rng.integers(0, 2))]
    return dilate(stamp(canvas, layer, colour, None), 1.5 * k)


def broken_part(
    canvas: Image.Image,
    surface: Image.Image,
    frame: Frame,
    rng: np.random.Generator,
    without: Callable[[], Image.Image],
) -> Image.Image:
    """A chunk broken off a part: what lies beneath shows through a jagged bite at the part's edge."""
    k = frame.k
    arr = np.asarray(surface) > 0
    edge = np.argwhere(arr & (np.asarray(erode(surface, 1.0)) == 0))  # boundary pixels of the part
    if not len(edge):
        msg = "broken_part: the target part has no boundary"
        raise ValueError(msg)
    ys, xs = np.nonzero(arr)
    size = math.sqrt(len(ys))  # side of the part's area in canvas pixels
    y, x = edge[rng.integers(len(edge))]
    cx_, cy_ = xs.mean(), ys.mean()
    # centre the bite slightly inside the part so that it removes a real chunk
    x = x + (cx_ - x) * 0.2
    y = y + (cy_ - y) * 0.2
    radius = max(rng.uniform(0.45, 0.6) * size, 9 * k)
    n = 14
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius * rng.uniform(0.7, 1.1, n)
    layer = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(layer).polygon(
        [(x + r * math.cos(t), y + r * math.sin(t)) for t, r in zip(angles, radii, strict=True)], fill=255
    )
    region = ImageChops.multiply(layer, surface)
    beneath = without()
    canvas.paste(beneath, (0, 0), region)
    # a dark fracture line along the new edge, inside what is left of the part
    rim = ImageChops.subtract(dilate(region, 1.5 * k), region)
    rim = ImageChops.multiply(rim, surface)
    canvas.paste((40, 36, 32), (0, 0), rim)
    return dilate(ImageChops.lighter(region, rim), 1.0 * k)
