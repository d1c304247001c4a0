"""``jam_jars``: a tray with a jar of jam at each end and a napkin with a spoon in between.

A relational category: its logical anomalies can only be seen by comparing the two jars, about 168
design units apart. Rules: both lids have the same colour (one of four, varying from tray to tray),
both jars are filled to the same level (35-85% of the body, varying from tray to tray) and both
labels carry the same variety mark (a circle, a triangle or a diamond). In an anomaly each jar on its
own looks like a jar of a normal tray; only the pair disagrees.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

SIDES = {"left": 44.0, "right": 212.0}  # jar centres (design x), 168 units apart
JAR_Y, JAR_W, JAR_H = 108.0, 62.0, 104.0
BODY_TOP, BODY_BOTTOM = JAR_Y - JAR_H / 2 + 6, JAR_Y + JAR_H / 2 - 4  # inner body, design y
FILL_RANGE = (0.35, 0.85)
FILL_JITTER = 0.012
FILL_TOLERANCE = 0.06  # rule: the two levels differ by at most this
FILL_STEP = 0.2  # an anomaly moves one level by at least this
LABEL_Y = BODY_BOTTOM - 14
LIDS = {"red": (186, 44, 42), "green": (52, 136, 70), "blue": (44, 82, 168), "gold": (206, 164, 52)}
MARKS = ("circle", "triangle", "diamond")
GLASS = (176, 188, 192)
JAM = (128, 28, 44)
LABEL = (240, 234, 218)
MARK = (150, 60, 40)
TRAY = (170, 128, 86)
NAPKIN = (234, 236, 240)


def _level(fill: float) -> float:
    return BODY_BOTTOM - fill * (BODY_BOTTOM - BODY_TOP)


class JamJars(Category):
    name = "jam_jars"
    title = "Jam jars"
    background = (64, 60, 58)
    rules = (
        "both jars have lids of the same colour",
        "both jars are filled to the same level",
        "both labels carry the same variety mark",
    )
    defects = (
        DefectSpec(
            "mismatched_lids",
            "logical",
            "wrong_colour_or_pairing",
            0.6,
            True,
            "the two lids have different colours of the range; the region is one lid",
            relational=True,
        ),
        DefectSpec(
            "unequal_fill",
            "logical",
            "wrong_proportion",
            0.6,
            True,
            "one jar is filled 20-50 points higher or lower than the other, both levels normal; "
            "the region is the band between its old and new level",
            relational=True,
        ),
        DefectSpec(
            "mismatched_marks",
            "logical",
            "wrong_colour_or_pairing",
            0.6,
            True,
            "the labels carry different variety marks; the region is one mark",
            relational=True,
        ),
        DefectSpec(
            "label_stain",
            "structural",
            "contamination",
            1.0,
            True,
            "a faint stain on a label",
            painter="faint_stain",
        ),
        DefectSpec(
            "glass_hairline",
            "structural",
            "crack",
            1.0,
            True,
            "a thin, low-contrast crack in a jar",
            painter="hairline_crack",
        ),
        DefectSpec(
            "lid_dent", "structural", "dent", 1.0, True, "a small shallow dent in a lid", painter="shallow_dent"
        ),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _jam(self, side: str, x: float, fill: float, rng: np.random.Generator) -> Part:
        level, bottom = _level(fill), BODY_BOTTOM
        rgb = jitter_rgb(JAM, rng, 5)
        return Part(
            "jam", x, (level + bottom) / 2, JAR_W - 6, bottom - level, rgb, z=1, attrs={"side": side, "fill": fill}
        )

    def _lid(self, side: str, x: float, colour: str, rng: np.random.Generator) -> Part:
        top = JAR_Y - JAR_H / 2
        return Part(
            "lid",
            x,
            top - 4,
            JAR_W - 4,
            16,
            jitter_rgb(LIDS[colour], rng, 6),
            z=2,
            attrs={"side": side, "colour": colour},
        )

    def _mark(self, side: str, x: float, mark: str, rng: np.random.Generator) -> Part:
        return Part("mark", x, LABEL_Y - 2, 13, 13, jitter_rgb(MARK, rng, 6), z=4, attrs={"side": side, "mark": mark})

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        colour = list(LIDS)[int(rng.integers(len(LIDS)))]
        mark = MARKS[int(rng.integers(len(MARKS)))]
        fill = rng.uniform(FILL_RANGE[0] + FILL_JITTER, FILL_RANGE[1] - FILL_JITTER)
        parts = [
            Part("tray", 128, 104, 250, 164, jitter_rgb(TRAY, rng, 5), z=0),
            Part("napkin", 128 + rng.uniform(-2, 2), 108 + rng.uniform(-2, 2), 66, 96, jitter_rgb(NAPKIN, rng, 4), z=1),
            Part("spoon", 128 + rng.uniform(-2, 2), 108, 12, 80, (196, 198, 204), angle=rng.uniform(-6, 6), z=2),
        ]
        for side, cx in SIDES.items():
            x = cx + rng.uniform(-1.5, 1.5)
            level = fill + rng.uniform(-FILL_JITTER, FILL_JITTER)
            parts += [
                Part("jar", x, JAR_Y, JAR_W, JAR_H, jitter_rgb(GLASS, rng, 4), z=0, attrs={"side": side}),
                self._jam(side, x, level, rng),
                self._lid(side, x, colour, rng),
                Part("label", x, LABEL_Y, 48, 26, jitter_rgb(LABEL, rng, 4), z=3, attrs={"side": side}),
                self._mark(side, x, mark, rng),
            ]
        return Scene(parts, {"colour": colour, "mark": mark, "fill": fill})

    def _of(self, scene: Scene, kind: str, side: str) -> Part:
        return next(p for p in scene.find(kind) if p.attrs["side"] == side)

    def sides(self, scene: Scene) -> dict[str, tuple[Any, Any]]:
        """What each jar shows on its own: lid colour, fill level and label mark (left, right)."""
        left, right = SIDES
        return {
            attr: (self._of(scene, kind, left).attrs[attr], self._of(scene, kind, right).attrs[attr])
            for kind, attr in (("lid", "colour"), ("jam", "fill"), ("mark", "mark"))
        }

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        side = "left" if rng.random() < 0.5 else "right"
        if defect == "mismatched_lids":
            lid = self._of(scene, "lid", side)
            other = [c for c in LIDS if c != lid.attrs["colour"]][int(rng.integers(len(LIDS) - 1))]
            new = self._lid(side, lid.x, other, rng)
            scene.parts[scene.parts.index(lid)] = new
            return [Region((new,), 1.5)]
        if defect == "unequal_fill":
            jam = self._of(scene, "jam", side)
            fill = jam.attrs["fill"]
            low, high = (FILL_RANGE[0], fill - FILL_STEP), (fill + FILL_STEP, FILL_RANGE[1])
            options = [r for r in (low, high) if r[1] > r[0]]
            lo, hi = options[int(rng.integers(len(options)))]
            new = self._jam(side, jam.x, rng.uniform(lo, hi), rng)
            new.rgb = jam.rgb
            scene.parts[scene.parts.index(jam)] = new
            ya, yb = sorted((_level(fill), _level(new.attrs["fill"])))
            band = Part("rect", jam.x, (ya + yb) / 2, JAR_W - 4, yb - ya + 6)
            covers = (self._of(scene, "label", side), self._of(scene, "mark", side))
            return [Region((band,), 0.5, minus=covers)]
        if defect == "mismatched_marks":
            mark = self._of(scene, "mark", side)
            other = [m for m in MARKS if m != mark.attrs["mark"]][int(rng.integers(len(MARKS) - 1))]
            new = self._mark(side, mark.x, other, rng)
            new.rgb = mark.rgb
            scene.parts[scene.parts.index(mark)] = new
            return [Region((mark, new), 1.5)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        side = "left" if rng.random() < 0.5 else "right"
        if defect == "label_stain":
            return [self._of(scene, "label", side)]
        if defect == "glass_hairline":
            return [self._of(scene, "jar", side), self._of(scene, "jam", side)]
        return [self._of(scene, "lid", side)]

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        sides = self.sides(scene)
        (lc, rc), (lf, rf), (lm, rm) = sides["colour"], sides["fill"], sides["mark"]
        if lc != rc:
            violated.append(f"{self.rules[0]} (left {lc}, right {rc})")
        if abs(lf - rf) > FILL_TOLERANCE:
            violated.append(f"{self.rules[1]} (left {lf:.0%}, right {rf:.0%})")
        if lm != rm:
            violated.append(f"{self.rules[2]} (left {lm}, right {rm})")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_tray(self, pen: Pen, part: Part) -> None:
        x0, y0, x1, y1 = part.x - part.w / 2, part.y - part.h / 2, part.x + part.w / 2, part.y + part.h / 2
        if pen.mode == "rgb":
            pen.box(x0 + 3, y0 + 4, x1 + 3, y1 + 4, shade(self.background, 0.6), radius=8)
        pen.box(x0, y0, x1, y1, shade(part.rgb, 0.82), radius=8)
        pen.box(x0 + 5, y0 + 5, x1 - 5, y1 - 5, part.rgb, radius=5)

    def draw_napkin(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=2)
        stripe = (150, 170, 196)
        for oy in (-part.h / 2 + 6, part.h / 2 - 6):
            pen.rect(part.x, part.y + oy, part.w, 3, stripe)

    def draw_spoon(self, pen: Pen, part: Part) -> None:
        x, y, a, rgb = part.x, part.y, part.angle, part.rgb
        pen.shadow(x, y, 10, 76, offset=1.5, strength=0.35, radius=4)
        pen.poly(x, y, [(-2.2, -8), (2.2, -8), (3.0, 40), (-3.0, 40)], shade(rgb, 0.85), angle=a)
        bowl = [(10 * math.cos(t), -22 + 16 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 20)]
        pen.poly(x, y, bowl, rgb, angle=a, outline=shade(rgb, 0.75))

    def draw_jar(self, pen: Pen, part: Part) -> None:
        x, y, rgb = part.x, part.y, part.rgb
        pen.shadow(x, y, part.w, part.h, offset=3.5, strength=0.5, radius=10)
        pen.rect(x, y, part.w, part.h, shade(rgb, 0.78), radius=10)
        pen.rect(x, y, part.w - 3, part.h - 3, rgb, radius=9)
        if pen.mode == "rgb":
            pen.rect(x - part.w / 2 + 7, y + 2, 3, part.h - 24, shade(rgb, 1.45), radius=1.5)  # reflection

    def draw_jam(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=6)
        pen.rect(part.x, part.y - part.h / 2 + 1.5, part.w - 2, 3, shade(part.rgb, 1.3), radius=1.5)  # surface

    def draw_lid(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, shade(part.rgb, 0.75), radius=3)
        pen.rect(part.x, part.y - 0.8, part.w - 2.5, part.h - 3, part.rgb, radius=2.5)
        for i in range(-5, 6):  # grip ribs
            pen.rect(part.x + i * 4.6, part.y + 1.5, 1.0, part.h - 7, shade(part.rgb, 0.86))

    def draw_label(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=2, outline=shade(part.rgb, 0.8), lw=0.8)
        pen.rect(part.x, part.y + 8.5, part.w - 16, 1.8, (120, 116, 108))

    def draw_mark(self, pen: Pen, part: Part) -> None:
        x, y, s, rgb = part.x, part.y, part.w / 2, part.rgb
        if part.attrs["mark"] == "circle":
            pen.ellipse(x, y, 2 * s, 2 * s, rgb)
        elif part.attrs["mark"] == "triangle":
            pen.poly(x, y, [(0, -s), (s * 1.05, s * 0.8), (-s * 1.05, s * 0.8)], rgb)
        else:
            pen.poly(x, y, [(0, -s * 1.1), (s, 0), (0, s * 1.1), (-s, 0)], rgb)
