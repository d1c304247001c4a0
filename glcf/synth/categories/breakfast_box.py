"""``breakfast_box``: a tray with fruit on the left and cereal over banana chips on the right.

Inspired by MVTec LOCO AD's breakfast box (its own drawing). Rules, readable only from the whole tray:
two oranges and one apple lie in the left compartment, no fruit elsewhere, and cereal fills half of
the right compartment's height with banana chips below it.
"""

from __future__ import annotations

import copy

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

LEFT = (22.0, 19.0, 140.0, 173.0)  # left compartment x0, y0, x1, y1 (design units)
RIGHT = (146.0, 19.0, 234.0, 173.0)
SLOTS = ((54.0, 56.0), (106.0, 96.0), (54.0, 136.0))  # the three fruit places
SPARE = ((106.0, 42.0), (106.0, 151.0))  # free spots where an extra fruit ends up
CEREAL_FRACTION = 0.5  # cereal height / right compartment height
FRACTION_JITTER = 0.02
FRACTION_TOLERANCE = 0.07  # rule: |fraction - 0.5| <= this

ORANGE = (238, 140, 28)
APPLE = (192, 42, 36)
TRAY = (236, 232, 222)
FLOOR = (222, 217, 204)
CEREAL = (150, 100, 50)
CEREAL_BITS = ((184, 130, 66), (122, 78, 36), (200, 158, 98), (104, 66, 30))
CHIPS = (222, 204, 136)
CHIP = (242, 228, 162)


def _texture(
    seed: int, area_per_item: float, radius: tuple[float, float], palette: tuple
) -> list[tuple[float, float, float, tuple[int, int, int]]]:
    """Items (x, y, r, colour) spread over the whole right compartment, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = RIGHT
    n = int((x1 - x0) * (y1 - y0) / area_per_item)
    r = rng.uniform(*radius, size=n)
    x = rng.uniform(x0 + r + 1, x1 - r - 1)
    y = rng.uniform(y0 + 1, y1 - 1, size=n)
    base = np.asarray(palette)[rng.integers(len(palette), size=n)]
    rgb = np.clip(base + rng.integers(-7, 8, size=(n, 3)), 0, 255)
    return [(a, b, c, tuple(d)) for a, b, c, d in zip(x.tolist(), y.tolist(), r.tolist(), rgb.tolist(), strict=True)]


def _inside(part: Part, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= part.x <= box[2] and box[1] <= part.y <= box[3]


class BreakfastBox(Category):
    name = "breakfast_box"
    title = "Breakfast box"
    background = (70, 66, 62)
    rules = (
        "the left compartment holds exactly two oranges and one apple",
        "no fruit lies outside the left compartment",
        "cereal fills half of the right compartment's height (45-55%), banana chips the rest",
    )
    defects = (
        DefectSpec(
            "too_many_oranges", "logical", "wrong_count", 0.8, True, "a third orange lies in the left compartment"
        ),
        DefectSpec(
            "missing_fruit",
            "logical",
            "missing_or_extra_part",
            0.5,
            True,
            "an orange or the apple is missing; the region is where it should lie",
        ),
        DefectSpec(
            "fruit_on_cereal",
            "logical",
            "wrong_placement",
            0.5,
            True,
            "an orange lies in the right compartment instead of the left",
        ),
        DefectSpec(
            "wrong_cereal_proportion",
            "logical",
            "wrong_proportion",
            0.5,
            True,
            "cereal fills about a quarter or three quarters of the right compartment",
        ),
        DefectSpec("tray_scratch", "structural", "scratch", 1.0, True, "scratches on the tray"),
        DefectSpec("tray_dent", "structural", "dent", 1.0, True, "a dent in the tray floor"),
        DefectSpec("contamination", "structural", "contamination", 1.0, True, "foreign matter in the box"),
        DefectSpec("broken_fruit", "structural", "broken_part", 1.0, True, "a chunk broken off a fruit"),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _fruit(self, kind: str, x: float, y: float, rng: np.random.Generator) -> Part:
        size = (38.0 if kind == "orange" else 40.0) + rng.uniform(-1.5, 1.5)
        rgb = jitter_rgb(ORANGE if kind == "orange" else APPLE, rng, 8)
        return Part(
            kind,
            x + rng.uniform(-3, 3),
            y + rng.uniform(-3, 3),
            size,
            size,
            rgb,
            angle=rng.uniform(-30, 30),
            z=3,
            attrs={"seed": int(rng.integers(2**31))},
        )

    @staticmethod
    def _food(fraction: float, colours: tuple, seeds: tuple[int, int]) -> list[Part]:
        """Cereal above chips; the textures are anchored to the compartment so a new fraction only moves the border."""
        x0, y0, x1, y1 = RIGHT
        yb = y0 + (y1 - y0) * fraction
        cereal = Part(
            "cereal", (x0 + x1) / 2, (y0 + yb) / 2, x1 - x0, yb - y0, colours[0], z=1, attrs={"seed": seeds[0]}
        )
        chips = Part("chips", (x0 + x1) / 2, (yb + y1) / 2, x1 - x0, y1 - yb, colours[1], z=2, attrs={"seed": seeds[1]})
        return [cereal, chips]

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        tray = Part(
            "tray", 128, 96, 228, 170, jitter_rgb(TRAY, rng, 4), z=0, attrs={"floor": jitter_rgb(FLOOR, rng, 4)}
        )
        apple_slot = int(rng.integers(3))
        fruits = [self._fruit("apple" if i == apple_slot else "orange", x, y, rng) for i, (x, y) in enumerate(SLOTS)]
        fraction = CEREAL_FRACTION + rng.uniform(-FRACTION_JITTER, FRACTION_JITTER)
        food = self._food(
            fraction,
            (jitter_rgb(CEREAL, rng, 5), jitter_rgb(CHIPS, rng, 5)),
            (int(rng.integers(2**31)), int(rng.integers(2**31))),
        )
        return Scene([tray, *food, *fruits])

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        oranges = scene.find("orange")
        if defect == "too_many_oranges":
            x, y = SPARE[int(rng.integers(len(SPARE)))]
            extra = self._fruit("orange", x, y, rng)
            scene.parts.append(extra)
            return [Region((extra,), 5.0)]
        if defect == "missing_fruit":
            fruits = [*scene.find("orange"), *scene.find("apple")]
            gone = fruits[int(rng.integers(len(fruits)))]
            scene.parts.remove(gone)
            return [Region((gone,), 5.0)]
        if defect == "fruit_on_cereal":
            moved = oranges[int(rng.integers(len(oranges)))]
            old = copy.deepcopy(moved)
            moved.x = rng.uniform(RIGHT[0] + 22, RIGHT[2] - 22)
            moved.y = rng.uniform(RIGHT[1] + 24, RIGHT[3] - 24)
            return [Region((moved,), 5.0), Region((old,), 5.0)]
        if defect == "wrong_cereal_proportion":
            fraction = CEREAL_FRACTION + rng.choice([-1, 1]) * rng.uniform(0.24, 0.3)
            (cereal,), (chips,) = scene.find("cereal"), scene.find("chips")
            old_border = cereal.y + cereal.h / 2
            scene.parts.remove(cereal)
            scene.parts.remove(chips)
            scene.parts.extend(
                self._food(fraction, (cereal.rgb, chips.rgb), (cereal.attrs["seed"], chips.attrs["seed"]))
            )
            x0, y0, x1, y1 = RIGHT
            ya, yb = sorted((old_border, y0 + (y1 - y0) * fraction))
            band = Part("box", (x0 + x1) / 2, (ya + yb) / 2, x1 - x0, yb - ya + 20)
            return [Region((band,), 0.0)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        if defect in ("tray_scratch", "tray_dent"):
            return scene.find("tray")
        if defect == "contamination":
            return [*scene.find("tray"), *scene.find("cereal"), *scene.find("chips")]
        fruits = [*scene.find("orange"), *scene.find("apple")]
        return [fruits[int(rng.integers(len(fruits)))]]

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        oranges = [p for p in scene.find("orange") if _inside(p, LEFT)]
        apples = [p for p in scene.find("apple") if _inside(p, LEFT)]
        if (len(oranges), len(apples)) != (2, 1):
            violated.append(f"{self.rules[0]} (found {len(oranges)} oranges, {len(apples)} apples)")
        if any(not _inside(p, LEFT) for p in scene.find("orange") + scene.find("apple")):
            violated.append(self.rules[1])
        cereal, chips = scene.find("cereal"), scene.find("chips")
        if len(cereal) != 1 or len(chips) != 1:
            violated.append(self.rules[2])
        else:
            fraction = cereal[0].h / (cereal[0].h + chips[0].h)
            if abs(fraction - CEREAL_FRACTION) > FRACTION_TOLERANCE:
                violated.append(f"{self.rules[2]} (found {fraction:.0%})")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_tray(self, pen: Pen, part: Part) -> None:
        x0, y0, x1, y1 = part.x - part.w / 2, part.y - part.h / 2, part.x + part.w / 2, part.y + part.h / 2
        if pen.mode == "rgb":
            pen.box(x0 + 3, y0 + 4, x1 + 3, y1 + 4, shade(self.background, 0.6), radius=12)
        pen.box(x0, y0, x1, y1, part.rgb, radius=12, outline=shade(part.rgb, 0.82), lw=1.5)
        floor = part.attrs["floor"]
        for bx0, by0, bx1, by1 in (LEFT, RIGHT):
            pen.box(bx0, by0, bx1, by1, floor, radius=6, outline=shade(floor, 0.85), lw=1.2)

    def draw_orange(self, pen: Pen, part: Part) -> None:
        pen.shadow(part.x, part.y, part.w, part.h, offset=3.0)
        pen.ellipse(part.x, part.y, part.w, part.h, shade(part.rgb, 0.85))
        pen.ellipse(part.x - 0.6, part.y - 0.6, part.w - 3, part.h - 3, part.rgb)
        rng = np.random.default_rng(part.attrs["seed"])
        for _ in range(10):  # peel pores
            r, t = rng.uniform(0, part.w * 0.4), rng.uniform(0, 2 * np.pi)
            pen.ellipse(part.x + r * np.cos(t), part.y + r * np.sin(t), 1.6, 1.6, shade(part.rgb, 0.88))
        pen.ellipse(part.x - part.w * 0.18, part.y - part.h * 0.2, part.w * 0.3, part.h * 0.22, shade(part.rgb, 1.35))
        pen.ellipse(part.x + part.w * 0.05, part.y - part.h * 0.02, 3, 3, (96, 110, 40))  # stem scar

    def draw_apple(self, pen: Pen, part: Part) -> None:
        pen.shadow(part.x, part.y, part.w, part.h, offset=3.0)
        pen.ellipse(part.x, part.y, part.w, part.h * 0.94, shade(part.rgb, 0.8))
        pen.ellipse(part.x - 0.8, part.y - 0.8, part.w - 3.5, part.h * 0.94 - 3.5, part.rgb)
        pen.ellipse(part.x + part.w * 0.1, part.y + part.h * 0.1, part.w * 0.55, part.h * 0.5, shade(part.rgb, 0.88))
        pen.ellipse(part.x - part.w * 0.2, part.y - part.h * 0.2, part.w * 0.26, part.h * 0.18, shade(part.rgb, 1.5))
        pen.poly(part.x, part.y, [(-1.2, -2), (1.2, -2), (1.0, -11), (-1.0, -11)], (90, 60, 30), angle=part.angle)
        pen.poly(part.x, part.y, [(1, -9), (10, -13), (4, -7)], (70, 140, 50), angle=part.angle)

    def draw_cereal(self, pen: Pen, part: Part) -> None:
        top, bottom = _fill_compartment(pen, part)
        if pen.mode != "rgb":
            return
        for x, y, r, rgb in _texture(part.attrs["seed"], 22.0, (1.6, 3.4), CEREAL_BITS):
            if top + r <= y <= bottom - r:
                pen.ellipse(x, y, 2 * r, 1.5 * r, rgb)

    def draw_chips(self, pen: Pen, part: Part) -> None:
        top, bottom = _fill_compartment(pen, part)
        if pen.mode != "rgb":
            return
        for x, y, r, chip in _texture(part.attrs["seed"], 150.0, (7.0, 9.0), (CHIP,)):
            if not top + 3 <= y <= bottom - 3:
                continue
            pen.ellipse(x, y, 2 * r, 2 * r * 0.9, shade(chip, 0.86))
            pen.ellipse(x - 0.5, y - 0.5, 2 * r - 3, 2 * r * 0.9 - 3, chip)
            pen.ellipse(x, y, 3, 3, shade(chip, 0.8))


def _fill_compartment(pen: Pen, part: Part) -> tuple[float, float]:
    """The filled floor of a compartment (cereal, chips); returns its top and bottom y."""
    top, bottom = part.y - part.h / 2, part.y + part.h / 2
    pen.box(part.x - part.w / 2 + 0.5, top, part.x + part.w / 2 - 0.5, bottom, part.rgb, radius=3)
    return top, bottom
