"""``juice_bottle``: a bottle of juice whose colour must match the fruit on its label.

Inspired by MVTec LOCO AD's juice bottle (its own drawing). Rules, readable only from the whole
bottle: the juice colour matches the label's fruit icon (orange, cherry or banana), the bottle is
filled to three quarters of its body, and the front label (with its icon) and the bottom tag are in
place, centred on the body.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade, turn
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

FLAVOURS = ("orange", "cherry", "banana")
JUICE = {"orange": (236, 142, 30), "cherry": (156, 22, 44), "banana": (236, 218, 128)}
FRUIT = {"orange": (242, 138, 20), "cherry": (200, 26, 50), "banana": (246, 212, 58)}
GLASS = (72, 80, 88)
LABEL = (238, 236, 228)
CAP = (226, 226, 220)
BODY_TOP, BODY_BOTTOM = 66.0, 174.0  # inner body, design y at dy = 0
FILL = 0.75
FILL_JITTER = 0.015
FILL_TOLERANCE = 0.06  # rule: |fill - 0.75| <= this
LABEL_DY = 140.0 - 120.0  # label centre below the bottle centre
ICON_DY = -6.0  # icon centre relative to the label centre
POSITION_TOLERANCE = 4.0


def _level(fill: float, dy: float) -> float:
    return dy + BODY_BOTTOM - fill * (BODY_BOTTOM - BODY_TOP)


class JuiceBottle(Category):
    name = "juice_bottle"
    title = "Juice bottle"
    background = (34, 34, 38)
    rules = (
        "the juice colour matches the fruit icon on the label",
        "the bottle is filled to 69-81% of its body",
        "a front label with a fruit icon and a bottom tag are present",
        "the front label sits upright in the centre of the body",
    )
    defects = (
        DefectSpec(
            "wrong_flavour_pairing",
            "logical",
            "wrong_colour_or_pairing",
            0.5,
            True,
            "the juice colour and the label's fruit icon do not match; the region is the changed one",
        ),
        DefectSpec(
            "wrong_fill_level",
            "logical",
            "wrong_proportion",
            0.6,
            True,
            "the bottle is filled to about 45% or 97% instead of 75%",
        ),
        DefectSpec(
            "missing_label",
            "logical",
            "missing_or_extra_part",
            0.5,
            True,
            "the front label is missing; the region is where it should be",
        ),
        DefectSpec(
            "misplaced_label",
            "logical",
            "wrong_placement",
            0.5,
            True,
            "the front label is shifted up or tilted; the region covers both places",
        ),
        DefectSpec("contamination", "structural", "contamination", 1.0, True, "foreign matter in or on the bottle"),
        DefectSpec("glass_crack", "structural", "crack", 1.0, True, "a crack in the glass"),
        DefectSpec("broken_cap", "structural", "broken_part", 1.0, True, "a chunk broken off the cap"),
        DefectSpec("label_scratch", "structural", "scratch", 1.0, True, "scratches on the label"),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _liquid(self, flavour: str, fill: float, x: float, dy: float, rng: np.random.Generator) -> Part:
        level = _level(fill, dy)
        bottom = dy + BODY_BOTTOM
        return Part(
            "liquid",
            x,
            (level + bottom) / 2,
            60,
            bottom - level,
            jitter_rgb(JUICE[flavour], rng, 6),
            z=1,
            attrs={"flavour": flavour, "fill": fill},
        )

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        flavour = FLAVOURS[int(rng.integers(len(FLAVOURS)))]
        x, dy = 128 + rng.uniform(-3, 3), rng.uniform(-2, 2)
        fill = FILL + rng.uniform(-FILL_JITTER, FILL_JITTER)
        lx, ly = x + rng.uniform(-1.5, 1.5), 120 + dy + LABEL_DY + rng.uniform(-1.5, 1.5)
        parts = [
            Part("bottle", x, 120 + dy, 66, 116, jitter_rgb(GLASS, rng, 4), z=0),
            Part("cap", x, 20 + dy, 32, 17, jitter_rgb(CAP, rng, 5), z=0),
            self._liquid(flavour, fill, x, dy, rng),
            Part("label", lx, ly, 58, 36, jitter_rgb(LABEL, rng, 4), angle=rng.uniform(-1.5, 1.5), z=2),
            Part("icon", lx, ly + ICON_DY, 24, 20, jitter_rgb(FRUIT[flavour], rng, 6), z=3, attrs={"flavour": flavour}),
            Part("tag", x, 167 + dy, 48, 11, jitter_rgb(LABEL, rng, 4), z=2),
        ]
        return Scene(parts, {"dy": dy})

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        (liquid,), (_bottle,) = scene.find("liquid"), scene.find("bottle")
        dy = scene.attrs["dy"]
        covers = tuple(scene.find("label") + scene.find("icon") + scene.find("tag"))
        if defect == "wrong_flavour_pairing":
            (icon,) = scene.find("icon")
            other = [f for f in FLAVOURS if f != icon.attrs["flavour"]][int(rng.integers(2))]
            if rng.random() < 0.5:  # the juice changes
                new = self._liquid(other, liquid.attrs["fill"], liquid.x, dy, rng)
                scene.parts[scene.parts.index(liquid)] = new
                return [Region((new,), 1.0, minus=covers)]
            icon.attrs["flavour"] = other
            icon.rgb = jitter_rgb(FRUIT[other], rng, 6)
            return [Region((icon,), 1.5)]
        if defect == "wrong_fill_level":
            fill = rng.uniform(0.41, 0.49) if rng.random() < 0.5 else rng.uniform(0.95, 0.99)
            new = self._liquid(liquid.attrs["flavour"], fill, liquid.x, dy, rng)
            new.rgb = liquid.rgb
            scene.parts[scene.parts.index(liquid)] = new
            ya, yb = sorted((_level(liquid.attrs["fill"], dy), _level(fill, dy)))
            band = Part("rect", liquid.x, (ya + yb) / 2, 62, yb - ya + 16)  # meniscus and reflection move too
            return [Region((band,), 0.5, minus=covers)]
        if defect == "missing_label":
            gone = scene.find("label") + scene.find("icon")
            for part in gone:
                scene.parts.remove(part)
            return [Region(tuple(gone), 1.5)]
        if defect == "misplaced_label":
            moved = scene.find("label") + scene.find("icon")
            old = copy.deepcopy(moved)
            if rng.random() < 0.5:
                shift = rng.uniform(14, 20)
                for part in moved:
                    part.y -= shift
            else:
                tilt = rng.choice([-1, 1]) * rng.uniform(16, 24)
                label = moved[0]
                for part in moved:
                    part.angle += tilt
                    # the icon turns with the label around the label's centre
                    ox, oy = part.x - label.x, part.y - label.y
                    c, s = math.cos(math.radians(tilt)), math.sin(math.radians(tilt))
                    part.x, part.y = label.x + ox * c - oy * s, label.y + ox * s + oy * c
            return [Region((*moved, *old), 1.5)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        if defect == "contamination":
            return scene.find("liquid") + scene.find("label")
        if defect == "glass_crack":
            return scene.find("bottle") + scene.find("liquid")
        if defect == "broken_cap":
            return scene.find("cap")
        return scene.find("label")

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        liquids, icons, labels, tags = (scene.find(k) for k in ("liquid", "icon", "label", "tag"))
        (bottle,) = scene.find("bottle")
        if len(liquids) == 1 and len(icons) == 1 and liquids[0].attrs["flavour"] != icons[0].attrs["flavour"]:
            violated.append(f"{self.rules[0]} ({liquids[0].attrs['flavour']} juice, {icons[0].attrs['flavour']} icon)")
        if len(liquids) != 1 or abs(liquids[0].attrs["fill"] - FILL) > FILL_TOLERANCE:
            fill = ", ".join(f"{p.attrs['fill']:.0%}" for p in liquids)
            violated.append(f"{self.rules[1]} (found {fill or 'no juice'})")
        if len(labels) != 1 or len(icons) != 1 or len(tags) != 1:
            violated.append(f"{self.rules[2]} (labels {len(labels)}, icons {len(icons)}, tags {len(tags)})")
        for label in labels:
            off = (label.x - bottle.x, label.y - bottle.y - LABEL_DY)
            if max(abs(off[0]), abs(off[1])) > POSITION_TOLERANCE or abs(label.angle) > 5:
                violated.append(f"{self.rules[3]} (offset {off[0]:+.0f}, {off[1]:+.0f}; tilt {label.angle:+.0f} deg)")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_bottle(self, pen: Pen, part: Part) -> None:
        x, y, rgb = part.x, part.y, part.rgb
        pen.shadow(x, y + 2, 66, 118, offset=4.0, strength=0.5, radius=10)
        outline = shade(rgb, 1.45)
        pen.poly(x, y, [(-33, -52), (-13, -80), (13, -80), (33, -52)], outline)
        pen.poly(x, y, [(-31.5, -52), (-12, -78.5), (12, -78.5), (31.5, -52)], rgb)
        pen.rect(x, y - 86, 26, 14, outline)
        pen.rect(x, y - 86, 23, 14, rgb)
        pen.rect(x, y, 66, 116, outline, radius=10)
        pen.rect(x, y, 63, 113, rgb, radius=9)
        if pen.mode == "rgb":
            pen.rect(x - 26, y + 2, 3.5, 96, shade(rgb, 1.9), radius=1.5)  # reflection
            pen.rect(x - 8, y - 84, 2, 10, shade(rgb, 1.7))

    def draw_cap(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, shade(part.rgb, 0.8), radius=2.5)
        pen.rect(part.x - 0.5, part.y - 0.5, part.w - 2, part.h - 2, part.rgb, radius=2)
        for i in range(-6, 7, 2):  # ribs
            pen.rect(part.x + i * 2.2, part.y + 0.5, 0.9, part.h - 5, shade(part.rgb, 0.84))

    def draw_liquid(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=4)
        pen.rect(part.x, part.y - part.h / 2 + 1.2, part.w, 2.4, shade(part.rgb, 1.25))  # meniscus
        if pen.mode == "rgb":
            pen.rect(part.x - 23, part.y + 1.5, 3, max(part.h - 8, 1), shade(part.rgb, 1.3), radius=1.5)

    def draw_label(self, pen: Pen, part: Part) -> None:
        w, h, a = part.w, part.h, part.angle
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        pen.poly(part.x, part.y, corners, part.rgb, angle=a, outline=shade(part.rgb, 0.8))
        ink = (112, 110, 104)
        for oy, half in ((9.0, 17.0), (13.5, 11.0)):  # two lines of "text"
            pen.poly(part.x, part.y, [(-half, oy - 1), (half, oy - 1), (half, oy + 1), (-half, oy + 1)], ink, angle=a)

    def draw_tag(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=1.5, outline=shade(part.rgb, 0.8), lw=0.8)
        pen.rect(part.x, part.y, part.w - 16, 2.2, (120, 118, 112))

    def draw_icon(self, pen: Pen, part: Part) -> None:
        x, y, a, rgb = part.x, part.y, part.angle, part.rgb
        flavour = part.attrs["flavour"]
        leaf, stem = (70, 150, 60), (100, 70, 40)
        if flavour == "orange":
            pen.ellipse(x, y + 1, 18, 18, shade(rgb, 0.85))
            pen.ellipse(x - 0.4, y + 0.6, 16, 16, rgb)
            pen.poly(x, y, [(0, -7), (7, -11), (3, -6)], leaf, angle=a)
        elif flavour == "cherry":
            for cx, cy in ((-5.0, 4.0), (5.0, 5.0)):
                pen.ellipse(*turn(x, y, cx, cy, a), 10.5, 10.5, rgb)
            pen.poly(x, y, [(-5, 0), (-4, 0), (1, -9), (0, -9)], stem, angle=a)
            pen.poly(x, y, [(5, 1), (6, 1), (1.5, -9), (0.5, -9)], stem, angle=a)
            pen.poly(x, y, [(1, -9), (8, -11), (4, -6)], leaf, angle=a)
        else:  # banana: a crescent
            ts = np.linspace(math.radians(10), math.radians(170), 12)
            outer = [(11.5 * math.cos(t), -4 + 11.5 * math.sin(t)) for t in ts]
            inner = [(9.0 * math.cos(t), -4 + 5.5 * math.sin(t)) for t in ts[::-1]]
            pen.poly(x, y, outer + inner, rgb, angle=a, outline=shade(rgb, 0.75))
            pen.poly(x, y, [(10.5, -2.5), (13, -5), (12, -1)], stem, angle=a)
