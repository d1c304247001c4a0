"""Registry of the generator's product categories (``CATEGORIES``: name -> category instance)."""

from __future__ import annotations

from glcf.synth.categories.bead_box import BeadBox
from glcf.synth.categories.breakfast_box import BreakfastBox
from glcf.synth.categories.jam_jars import JamJars
from glcf.synth.categories.juice_bottle import JuiceBottle
from glcf.synth.categories.pushpins import Pushpins
from glcf.synth.categories.splicing_connectors import SplicingConnectors
from glcf.synth.scene import Category

__all__ = ["CATEGORIES", "BeadBox", "BreakfastBox", "JamJars", "JuiceBottle", "Pushpins", "SplicingConnectors"]

CATEGORIES: dict[str, Category] = {
    c.name: c for c in (BreakfastBox(), JuiceBottle(), Pushpins(), SplicingConnectors(), BeadBox(), JamJars())
}
