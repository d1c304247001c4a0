"""``splicing_connectors``: two lever connectors joined by one cable whose colour encodes their size.

Inspired by MVTec LOCO AD's splicing connectors (its own drawing). Rules, readable only from the
whole image: both connectors have the same number of slots (2, 3 or 5), the cable colour encodes it
(2 yellow, 3 blue, 5 red), and exactly one cable joins the same slot on both sides.
"""

from __future__ import annotations

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

SLOT_COUNTS = (2, 3, 5)
CABLE_OF = {2: "yellow", 3: "blue", 5: "red"}
CABLE_RGB = {"yellow": (232, 196, 40), "blue": (44, 104, 206), "red": (200, 44, 44)}
HOUSING = (226, 226, 218)
LEVER = (234, 118, 30)
PITCH = 18.0  # slot spacing
X_LEFT, X_RIGHT = 56.0, 200.0


def slot_y(connector: Part, slot: int) -> float:
    n = connector.attrs["slots"]
    return connector.y - (n - 1) * PITCH / 2 + slot * PITCH


def hole_xy(connector: Part, slot: int) -> tuple[float, float]:
    inward = 1 if connector.attrs["side"] == "left" else -1
    return connector.x + inward * 13.0, slot_y(connector, slot)


def bezier(p0: tuple[float, float], p3: tuple[float, float], sag: float, n: int = 28) -> list[tuple[float, float]]:
    """A hanging cable from ``p0`` to ``p3``: cubic Bezier whose inner control points sag by ``sag``."""
    p1 = (p0[0] + 45.0, p0[1] + sag)
    p2 = (p3[0] - 45.0, p3[1] + sag)
    ts = np.linspace(0.0, 1.0, n)
    pts = []
    for t in ts:
        a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
        pts.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return pts


class SplicingConnectors(Category):
    name = "splicing_connectors"
    title = "Splicing connectors"
    background = (64, 70, 78)
    rules = (
        "both connectors have the same number of slots",
        "the cable colour encodes the slot count: 2 yellow, 3 blue, 5 red",
        "exactly one cable joins the same slot on both connectors",
    )
    defects = (
        DefectSpec(
            "missing_cable",
            "logical",
            "missing_or_extra_part",
            0.4,
            True,
            "the cable is missing; the region is where it should run",
        ),
        DefectSpec("extra_cable", "logical", "wrong_count", 0.8, True, "a second cable joins the connectors"),
        DefectSpec(
            "cable_wrong_slot",
            "logical",
            "wrong_placement",
            0.4,
            True,
            "the cable ends in another slot on the right; the region covers both paths",
        ),
        DefectSpec(
            "mismatched_pair",
            "logical",
            "wrong_colour_or_pairing",
            0.4,
            True,
            "the right connector has another slot count, or the cable colour belongs to another size",
        ),
        DefectSpec("broken_cable", "structural", "broken_part", 1.0, True, "a piece broken out of the cable"),
        DefectSpec("housing_crack", "structural", "crack", 1.0, True, "a crack in a connector housing"),
        DefectSpec("housing_dent", "structural", "dent", 1.0, True, "a dent in a connector housing"),
        DefectSpec("contamination", "structural", "contamination", 1.0, True, "foreign matter on the parts"),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _connector(self, side: str, slots: int, y: float, rgb: tuple[int, int, int]) -> Part:
        x = X_LEFT if side == "left" else X_RIGHT
        return Part("connector", x, y, 44, slots * PITCH + 12, rgb, z=2, attrs={"slots": slots, "side": side})

    def _cable(
        self, left: Part, right: Part, ls: int, rs: int, colour: str, sag: float, rng: np.random.Generator
    ) -> Part:
        p0, p3 = hole_xy(left, ls), hole_xy(right, rs)
        return Part(
            "cable",
            (p0[0] + p3[0]) / 2,
            (p0[1] + p3[1]) / 2,
            p3[0] - p0[0],
            8,
            jitter_rgb(CABLE_RGB[colour], rng, 8),
            z=1,
            attrs={"left_slot": ls, "right_slot": rs, "colour": colour, "sag": sag, "p0": p0, "p3": p3},
        )

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        n = SLOT_COUNTS[int(rng.integers(len(SLOT_COUNTS)))]
        housing = jitter_rgb(HOUSING, rng, 4)
        left = self._connector("left", n, 96 + rng.uniform(-4, 4), housing)
        right = self._connector("right", n, 96 + rng.uniform(-4, 4), housing)
        slot = int(rng.integers(n))
        cable = self._cable(left, right, slot, slot, CABLE_OF[n], rng.uniform(14, 34), rng)
        return Scene([left, right, cable])

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        left, right = scene.find("connector")
        (cable,) = scene.find("cable")
        connectors = (left, right)
        n = left.attrs["slots"]
        others = [s for s in range(n) if s != cable.attrs["left_slot"]]
        if defect == "missing_cable":
            scene.parts.remove(cable)
            return [Region((cable,), 2.0, minus=connectors)]
        if defect == "extra_cable":
            slot = others[int(rng.integers(len(others)))]
            sag = float(np.clip(cable.attrs["sag"] + rng.choice([-1, 1]) * rng.uniform(8, 14), 6, 44))
            extra = self._cable(left, right, slot, slot, cable.attrs["colour"], sag, rng)
            extra.rgb = cable.rgb
            scene.parts.append(extra)
            return [Region((extra,), 2.0, minus=connectors)]
        if defect == "cable_wrong_slot":
            slot = others[int(rng.integers(len(others)))]
            new = self._cable(
                left, right, cable.attrs["left_slot"], slot, cable.attrs["colour"], cable.attrs["sag"], rng
            )
            new.rgb = cable.rgb
            scene.parts[scene.parts.index(cable)] = new
            return [Region((cable, new), 2.0, minus=connectors)]
        if defect == "mismatched_pair":
            sizes = [s for s in SLOT_COUNTS if s != n and s > cable.attrs["right_slot"]]
            if sizes and rng.random() < 0.5:  # the right connector has another size
                new_right = self._connector("right", sizes[int(rng.integers(len(sizes)))], right.y, right.rgb)
                new_cable = self._cable(
                    left,
                    new_right,
                    cable.attrs["left_slot"],
                    cable.attrs["right_slot"],
                    cable.attrs["colour"],
                    cable.attrs["sag"],
                    rng,
                )
                new_cable.rgb = cable.rgb
                scene.parts[scene.parts.index(right)] = new_right
                scene.parts[scene.parts.index(cable)] = new_cable
                return [Region((right, new_right, cable, new_cable), 2.0)]
            colour = [c for c in CABLE_RGB if c != cable.attrs["colour"]][int(rng.integers(2))]
            cable.attrs["colour"] = colour
            cable.rgb = jitter_rgb(CABLE_RGB[colour], rng, 8)
            return [Region((cable,), 1.5, minus=connectors)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        connectors = scene.find("connector")
        if defect == "broken_cable":
            return scene.find("cable")
        if defect in ("housing_crack", "housing_dent"):
            return [connectors[int(rng.integers(len(connectors)))]]
        return connectors + scene.find("cable")

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        connectors = scene.find("connector")
        slots = sorted(c.attrs["slots"] for c in connectors)
        if len(connectors) != 2 or slots[0] != slots[-1]:
            violated.append(f"{self.rules[0]} (found {slots})")
        cables = scene.find("cable")
        for cable in cables:
            if connectors and cable.attrs["colour"] != CABLE_OF.get(connectors[0].attrs["slots"]):
                violated.append(f"{self.rules[1]} ({cable.attrs['colour']} cable, {slots} slots)")
        if len(cables) != 1 or any(c.attrs["left_slot"] != c.attrs["right_slot"] for c in cables):
            ends = [(c.attrs["left_slot"], c.attrs["right_slot"]) for c in cables]
            violated.append(f"{self.rules[2]} (cables at slots {ends})")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_connector(self, pen: Pen, part: Part) -> None:
        x, y, w, h, rgb = part.x, part.y, part.w, part.h, part.rgb
        outward = -1 if part.attrs["side"] == "left" else 1
        pen.shadow(x, y, w, h, offset=3.0, strength=0.5, radius=5)
        pen.rect(x, y, w, h, shade(rgb, 0.78), radius=5)
        pen.rect(x - 0.5, y - 0.5, w - 2.5, h - 2.5, rgb, radius=4)
        for slot in range(part.attrs["slots"]):
            sy = slot_y(part, slot)
            pen.rect(x + outward * 9, sy, 19, 12, shade(LEVER, 0.75), radius=2)
            pen.rect(x + outward * 9 - 0.4, sy - 0.4, 17.5, 10.5, LEVER, radius=2)
            hx, hy = hole_xy(part, slot)
            pen.ellipse(hx, hy, 10, 10, shade(rgb, 0.6))
            pen.ellipse(hx, hy, 7.5, 7.5, (44, 44, 48))

    def draw_cable(self, pen: Pen, part: Part) -> None:
        pts = bezier(part.attrs["p0"], part.attrs["p3"], part.attrs["sag"])
        if pen.mode == "rgb":
            pen.line([(px + 2.5, py + 3.5) for px, py in pts], shade(self.background, 0.6), 9.5)  # shadow
        elif pen.mode == "mask":
            pen.line([(px + 2.5, py + 3.5) for px, py in pts], part.rgb, 9.5)
        pen.line(pts, shade(part.rgb, 0.7), 9.5)
        pen.line(pts, part.rgb, 7.5)
        if pen.mode == "rgb":
            pen.line([(px, py - 1.8) for px, py in pts], shade(part.rgb, 1.4), 1.8)
