"""Every structural painter by name (``DefectSpec.painter``): the bold ones and the subtle ones."""

from __future__ import annotations

from glcf.synth.effects import Painter, broken_part, contamination, crack, dent, scratch
from glcf.synth.subtle import faint_stain, hairline_crack, shallow_dent

__all__ = ["PAINTERS", "SUBTLE_PAINTERS"]

PAINTERS: dict[str, Painter] = {
    "scratch": scratch,
    "crack": crack,
    "dent": dent,
    "contamination": contamination,
    "broken_part": broken_part,
    "faint_stain": faint_stain,
    "hairline_crack": hairline_crack,
    "shallow_dent": shallow_dent,
}
#: Painters of small, low-contrast defects (kinds ``contamination``, ``crack`` and ``dent``).
SUBTLE_PAINTERS = ("faint_stain", "hairline_crack", "shallow_dent")
