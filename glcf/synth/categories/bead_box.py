"""``bead_box``: a long case with a bead compartment at each end and a printed panel in between.

A relational category: its logical anomalies can only be seen by comparing the two ends of the case.
Rules: both compartments hold the same number of beads (one to four, varying from case to case,
filling the slots from the top) and every bead of a case has the same colour (one of four, varying
from case to case). In an anomaly each compartment on its own looks like one of a normal case; only
the two compartments, about 176 design units apart, disagree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

SIDES = {"left": 40.0, "right": 216.0}  # compartment centres (design x), 176 units apart
WELL_Y, WELL_W, WELL_H = 96.0, 56.0, 128.0
SLOT_PITCH = 30.0  # four slots, top to bottom, at WELL_Y + (i - 1.5) * SLOT_PITCH
MAX_BEADS = 4
BEAD = 24.0
BEAD_COLOURS = {
    "red": (204, 54, 48),
    "green": (58, 158, 82),
    "blue": (54, 102, 208),
    "yellow": (232, 194, 44),
}
CASE = (196, 200, 206)
WELL = (146, 152, 160)
PANEL = (226, 224, 216)
INK = (96, 100, 110)


class BeadBox(Category):
    name = "bead_box"
    title = "Bead box"
    background = (86, 72, 60)
    rules = (
        "both compartments hold the same number of beads (1-4)",
        "every bead of a case has the same colour",
    )
    defects = (
        DefectSpec(
            "unequal_counts",
            "logical",
            "wrong_count",
            0.6,
            True,
            "the two compartments hold different numbers of beads, each count normal on its own; "
            "the region is the extra beads or the empty slots of one compartment",
            relational=True,
        ),
        DefectSpec(
            "mismatched_colours",
            "logical",
            "wrong_colour_or_pairing",
            0.6,
            True,
            "the beads of one compartment have another colour of the range than those of the other; "
            "the region is the recoloured beads",
            relational=True,
        ),
        DefectSpec(
            "panel_stain",
            "structural",
            "contamination",
            1.0,
            True,
            "a faint stain on the printed panel",
            painter="faint_stain",
        ),
        DefectSpec(
            "case_hairline",
            "structural",
            "crack",
            1.0,
            True,
            "a thin, low-contrast crack in the case or a compartment floor",
            painter="hairline_crack",
        ),
        DefectSpec(
            "case_dent",
            "structural",
            "dent",
            1.0,
            True,
            "a small shallow dent in the case or the panel",
            painter="shallow_dent",
        ),
        DefectSpec("broken_bead", "structural", "broken_part", 1.0, True, "a chunk broken off a bead"),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _bead(self, side: str, slot: int, colour: str, rng: np.random.Generator) -> Part:
        x = SIDES[side] + rng.uniform(-2.0, 2.0)
        y = WELL_Y + (slot - 1.5) * SLOT_PITCH + rng.uniform(-2.0, 2.0)
        return Part(
            "bead",
            x,
            y,
            BEAD,
            BEAD,
            jitter_rgb(BEAD_COLOURS[colour], rng, 8),
            z=3,
            attrs={"side": side, "slot": slot, "colour": colour},
        )

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        count = int(rng.integers(1, MAX_BEADS + 1))
        colour = list(BEAD_COLOURS)[int(rng.integers(len(BEAD_COLOURS)))]
        dx, dy = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)
        well_rgb = jitter_rgb(WELL, rng, 4)
        parts = [
            Part("case", 128 + dx, 96 + dy, 244, 152, jitter_rgb(CASE, rng, 4), z=0),
            Part("panel", 128 + dx, WELL_Y + dy, 100, WELL_H, jitter_rgb(PANEL, rng, 4), z=1),
        ]
        parts += [Part("well", x, WELL_Y, WELL_W, WELL_H, well_rgb, z=1, attrs={"side": s}) for s, x in SIDES.items()]
        for side in SIDES:
            parts += [self._bead(side, slot, colour, rng) for slot in range(count)]
        return Scene(parts, {"count": count, "colour": colour})

    def sides(self, scene: Scene) -> dict[str, tuple[Any, Any]]:
        """What each compartment shows on its own: bead count and bead colours (left, right)."""
        beads = {s: [b for b in scene.find("bead") if b.attrs["side"] == s] for s in SIDES}
        colours = {s: "+".join(sorted({b.attrs["colour"] for b in beads[s]})) for s in SIDES}
        return {
            "count": (len(beads["left"]), len(beads["right"])),
            "colour": (colours["left"], colours["right"]),
        }

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        side = "left" if rng.random() < 0.5 else "right"
        beads = [b for b in scene.find("bead") if b.attrs["side"] == side]
        if defect == "unequal_counts":
            count = len(beads)
            new = [n for n in range(1, MAX_BEADS + 1) if n != count][int(rng.integers(MAX_BEADS - 1))]
            if new > count:
                extra = [self._bead(side, slot, beads[0].attrs["colour"], rng) for slot in range(count, new)]
                scene.parts += extra
                return [Region(tuple(extra), 2.0)]
            gone = beads[new:]
            for bead in gone:
                scene.parts.remove(bead)
            return [Region(tuple(gone), 2.0)]
        if defect == "mismatched_colours":
            colour = beads[0].attrs["colour"]
            other = [c for c in BEAD_COLOURS if c != colour][int(rng.integers(len(BEAD_COLOURS) - 1))]
            for bead in beads:
                bead.attrs["colour"] = other
                bead.rgb = jitter_rgb(BEAD_COLOURS[other], rng, 8)
            return [Region(tuple(beads), 2.0)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        if defect == "panel_stain":
            return scene.find("panel")
        if defect == "case_hairline":
            return scene.find("case") + scene.find("well")
        if defect == "case_dent":
            return scene.find("case") + scene.find("panel")
        beads = scene.find("bead")
        return [beads[int(rng.integers(len(beads)))]]

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        sides = self.sides(scene)
        left, right = sides["count"]
        if left != right or not all(1 <= n <= MAX_BEADS for n in (left, right)):
            violated.append(f"{self.rules[0]} (left {left}, right {right})")
        colours = sorted({b.attrs["colour"] for b in scene.find("bead")})
        if len(colours) > 1:
            violated.append(f"{self.rules[1]} (left {sides['colour'][0]}, right {sides['colour'][1]})")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_case(self, pen: Pen, part: Part) -> None:
        x0, y0, x1, y1 = part.x - part.w / 2, part.y - part.h / 2, part.x + part.w / 2, part.y + part.h / 2
        if pen.mode == "rgb":
            pen.box(x0 + 3, y0 + 4, x1 + 3, y1 + 4, shade(self.background, 0.6), radius=10)
        pen.box(x0, y0, x1, y1, part.rgb, radius=10, outline=shade(part.rgb, 1.2), lw=2)

    def draw_well(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w + 3, part.h + 3, shade(part.rgb, 0.8), radius=7)
        pen.rect(part.x + 0.8, part.y + 0.8, part.w, part.h, part.rgb, radius=6)

    def draw_panel(self, pen: Pen, part: Part) -> None:
        pen.rect(part.x, part.y, part.w, part.h, part.rgb, radius=4, outline=shade(part.rgb, 0.82), lw=1)
        pen.ellipse(part.x, part.y - 30, 30, 30, INK)  # logo
        pen.ellipse(part.x, part.y - 30, 18, 18, part.rgb)
        pen.ellipse(part.x, part.y - 30, 8, 8, INK)
        for oy, half in ((12.0, 34.0), (22.0, 26.0), (32.0, 34.0), (42.0, 20.0)):  # lines of "text"
            pen.rect(part.x, part.y + oy, 2 * half, 2.2, shade(part.rgb, 0.72))

    def draw_bead(self, pen: Pen, part: Part) -> None:
        x, y, d, rgb = part.x, part.y, part.w, part.rgb
        pen.shadow(x, y, d - 2, d - 2, offset=2.0, strength=0.45)
        pen.ellipse(x, y, d, d, shade(rgb, 0.7))
        pen.ellipse(x - 0.6, y - 0.6, d - 2.5, d - 2.5, rgb)
        pen.ellipse(x + 0.5, y + 0.5, d * 0.28, d * 0.28, shade(rgb, 0.6))  # the hole
        if pen.mode == "rgb":
            pen.ellipse(x - d * 0.22, y - d * 0.22, d * 0.22, d * 0.16, shade(rgb, 1.55))
