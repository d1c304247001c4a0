"""``pushpins``: a 4x3 compartment box with exactly one pushpin per compartment.

Inspired by MVTec LOCO AD's pushpins (its own drawing). Rules, readable only from the whole box:
every compartment holds exactly one pin, all pins of a box share one colour (a box is yellow or
blue), and every separator wall is in place.
"""

from __future__ import annotations

import copy

import numpy as np

from glcf.synth.draw import Pen, jitter_rgb, shade, turn
from glcf.synth.scene import Category, DefectSpec, Part, Region, Scene

COLS, ROWS = 4, 3
GRID = (22.0, 18.0, 234.0, 174.0)  # inner area x0, y0, x1, y1
CELL_W = (GRID[2] - GRID[0]) / COLS
CELL_H = (GRID[3] - GRID[1]) / ROWS
WALL = 5.0
PIN_COLOURS = {"yellow": (238, 196, 34), "blue": (50, 106, 214)}
PIN_ANGLE = 40.0  # degrees; the normal orientation, jittered by +-15
BOX = (150, 158, 166)
FLOOR = (122, 130, 138)
WALL_RGB = (184, 192, 200)
STEEL = (206, 206, 212)


def cell_of(x: float, y: float) -> tuple[int, int]:
    """(row, column) of the compartment holding a design point."""
    col = int(np.clip((x - GRID[0]) // CELL_W, 0, COLS - 1))
    row = int(np.clip((y - GRID[1]) // CELL_H, 0, ROWS - 1))
    return row, col


def cell_centre(row: int, col: int) -> tuple[float, float]:
    return GRID[0] + (col + 0.5) * CELL_W, GRID[1] + (row + 0.5) * CELL_H


class Pushpins(Category):
    name = "pushpins"
    title = "Pushpins"
    background = (46, 50, 56)
    rules = (
        "every compartment holds exactly one pushpin",
        "all pushpins of a box have the same colour",
        "every separator wall is present",
    )
    defects = (
        DefectSpec(
            "missing_pushpin",
            "logical",
            "missing_or_extra_part",
            450.0,
            False,
            "a compartment is empty; the region is the compartment, saturated by one pin's area",
        ),
        DefectSpec("additional_pushpin", "logical", "wrong_count", 0.8, True, "a compartment holds a second pin"),
        DefectSpec(
            "mixed_colours",
            "logical",
            "wrong_colour_or_pairing",
            0.8,
            True,
            "one pin has the other colour of the range",
        ),
        DefectSpec("missing_separator", "logical", "missing_or_extra_part", 0.6, True, "a separator wall is missing"),
        DefectSpec("broken_pushpin", "structural", "broken_part", 1.0, True, "a chunk broken off a pin"),
        DefectSpec("box_scratch", "structural", "scratch", 1.0, True, "scratches on the box"),
        DefectSpec("box_crack", "structural", "crack", 1.0, True, "a crack in the box"),
        DefectSpec("contamination", "structural", "contamination", 1.0, True, "foreign matter in the box"),
    )

    # ---- scenes ---------------------------------------------------------------------------------
    def _pin(self, x: float, y: float, colour: str, rng: np.random.Generator, angle: float | None = None) -> Part:
        return Part(
            "pin",
            x,
            y,
            34,
            22,
            jitter_rgb(PIN_COLOURS[colour], rng, 10),
            angle=PIN_ANGLE + rng.uniform(-15, 15) if angle is None else angle,
            z=3,
            attrs={"colour": colour},
        )

    def sample_scene(self, rng: np.random.Generator) -> Scene:
        colour = "yellow" if rng.random() < 0.5 else "blue"
        parts = [
            Part("case", 128, 96, 224, 168, jitter_rgb(BOX, rng, 4), z=0, attrs={"floor": jitter_rgb(FLOOR, rng, 4)})
        ]
        wall_rgb = jitter_rgb(WALL_RGB, rng, 4)
        for i in range(1, COLS):
            x = GRID[0] + i * CELL_W
            parts.append(
                Part(
                    "wall",
                    x,
                    (GRID[1] + GRID[3]) / 2,
                    WALL,
                    GRID[3] - GRID[1],
                    wall_rgb,
                    z=1,
                    attrs={"axis": "v", "index": i},
                )
            )
        for j in range(1, ROWS):
            y = GRID[1] + j * CELL_H
            parts.append(
                Part(
                    "wall",
                    (GRID[0] + GRID[2]) / 2,
                    y,
                    GRID[2] - GRID[0],
                    WALL,
                    wall_rgb,
                    z=1,
                    attrs={"axis": "h", "index": j},
                )
            )
        for row in range(ROWS):
            for col in range(COLS):
                cx, cy = cell_centre(row, col)
                parts.append(self._pin(cx + rng.uniform(-4, 4), cy + rng.uniform(-4, 4), colour, rng))
        return Scene(parts, {"colour": colour})

    def apply_logical(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Region]:
        pins = scene.find("pin")
        if defect == "missing_pushpin":
            gone = pins[int(rng.integers(len(pins)))]
            scene.parts.remove(gone)
            cx, cy = cell_centre(*cell_of(gone.x, gone.y))
            return [Region((Part("box", cx, cy, CELL_W - WALL, CELL_H - WALL),), 0.0)]
        if defect == "additional_pushpin":
            host = pins[int(rng.integers(len(pins)))]
            cx, cy = cell_centre(*cell_of(host.x, host.y))
            # the host moves to one corner of its compartment and the extra pin lies in the other half
            side = rng.choice([-1, 1])
            old = copy.deepcopy(host)
            host.x, host.y = cx - side * 9 + rng.uniform(-2, 2), cy - 9 + rng.uniform(-2, 2)
            extra = self._pin(
                cx + side * 9 + rng.uniform(-2, 2), cy + 9 + rng.uniform(-2, 2), host.attrs["colour"], rng
            )
            extra.z = 4
            scene.parts.append(extra)
            return [Region((host, extra, old), 3.0)]
        if defect == "mixed_colours":
            odd = pins[int(rng.integers(len(pins)))]
            other = "blue" if odd.attrs["colour"] == "yellow" else "yellow"
            odd.attrs["colour"] = other
            odd.rgb = jitter_rgb(PIN_COLOURS[other], rng, 10)
            return [Region((odd,), 3.0)]
        if defect == "missing_separator":
            walls = scene.find("wall")
            gone = walls[int(rng.integers(len(walls)))]
            scene.parts.remove(gone)
            return [Region((gone,), 1.5)]
        return super().apply_logical(scene, defect, rng)

    def structural_targets(self, scene: Scene, defect: str, rng: np.random.Generator) -> list[Part]:
        if defect == "broken_pushpin":
            pins = scene.find("pin")
            return [pins[int(rng.integers(len(pins)))]]
        if defect == "contamination":
            return [*scene.find("case"), *scene.find("wall")]
        return scene.find("case")

    def check_rules(self, scene: Scene) -> list[str]:
        violated = []
        counts = np.zeros((ROWS, COLS), dtype=int)
        for pin in scene.find("pin"):
            counts[cell_of(pin.x, pin.y)] += 1
        if (counts != 1).any():
            bad = [f"{tuple(int(v) for v in rc)}: {counts[tuple(rc)]}" for rc in np.argwhere(counts != 1)]
            violated.append(f"{self.rules[0]} (compartment: pins {', '.join(bad)})")
        colours = sorted({pin.attrs["colour"] for pin in scene.find("pin")})
        if len(colours) > 1:
            violated.append(f"{self.rules[1]} (found {', '.join(colours)})")
        walls = {(w.attrs["axis"], w.attrs["index"]) for w in scene.find("wall")}
        expected = {("v", i) for i in range(1, COLS)} | {("h", j) for j in range(1, ROWS)}
        if walls != expected:
            violated.append(f"{self.rules[2]} (missing {sorted(expected - walls)})")
        return violated

    # ---- drawing --------------------------------------------------------------------------------
    def draw_case(self, pen: Pen, part: Part) -> None:
        x0, y0, x1, y1 = part.x - part.w / 2, part.y - part.h / 2, part.x + part.w / 2, part.y + part.h / 2
        if pen.mode == "rgb":
            pen.box(x0 + 3, y0 + 4, x1 + 3, y1 + 4, shade(self.background, 0.6), radius=8)
        pen.box(x0, y0, x1, y1, part.rgb, radius=8, outline=shade(part.rgb, 1.25), lw=2)
        pen.box(*GRID, part.attrs["floor"], radius=3)

    def draw_wall(self, pen: Pen, part: Part) -> None:
        x0, y0, x1, y1 = part.x - part.w / 2, part.y - part.h / 2, part.x + part.w / 2, part.y + part.h / 2
        pen.box(x0, y0, x1, y1, shade(part.rgb, 0.8))
        if part.attrs["axis"] == "v":
            pen.box(x0 + 0.8, y0, x1 - 1.6, y1, part.rgb)
        else:
            pen.box(x0, y0 + 0.8, x1, y1 - 1.6, part.rgb)

    def draw_pin(self, pen: Pen, part: Part) -> None:
        """A pin lying on its side: round head, tapered grip and steel needle along ``angle``."""
        x, y, a, rgb = part.x, part.y, part.angle, part.rgb
        head_c = -7.0  # head centre on the pin axis, relative to the part centre
        pen.shadow(x + 1, y + 1, 30, 16, offset=2.0, strength=0.45)
        pen.poly(
            x, y, [(head_c, -4.5), (head_c + 17, -3.0), (head_c + 17, 3.0), (head_c, 4.5)], shade(rgb, 0.8), angle=a
        )
        pen.poly(
            x, y, [(head_c + 16, -1.0), (head_c + 27, -0.4), (head_c + 27, 0.4), (head_c + 16, 1.0)], STEEL, angle=a
        )
        hx, hy = turn(x, y, head_c, 0.0, a)
        pen.ellipse(hx, hy, 22, 22, shade(rgb, 0.72))
        pen.ellipse(hx - 0.6, hy - 0.6, 19, 19, rgb)
        pen.ellipse(hx - 0.3, hy - 0.3, 11, 11, shade(rgb, 0.88))
        pen.ellipse(hx - 4, hy - 4, 5, 4, shade(rgb, 1.5))
