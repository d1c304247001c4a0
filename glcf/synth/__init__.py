"""Synthetic LOCO-like data: a deterministic generator of product categories with logical and
structural anomalies, written in the MVTec LOCO AD layout (the project's embedded default data).

>>> from glcf.synth import GeneratorConfig, generate
>>> report = generate("data/synthetic", GeneratorConfig(seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

from glcf.synth.categories import CATEGORIES
from glcf.synth.config import DEFAULT_CATEGORIES, GeneratorConfig, SplitCounts, parse_image_size
from glcf.synth.generate import GENERATOR_VERSION, CategoryReport, GenerationReport, generate
from glcf.synth.preview import write_contact_sheet
from glcf.synth.sample import SPLITS, Sample, make_sample
from glcf.synth.scene import LOGICAL_KINDS, STRUCTURAL_KINDS, Category, DefectSpec

__all__ = [
    "CATEGORIES",
    "DEFAULT_CATEGORIES",
    "GENERATOR_VERSION",
    "LOGICAL_KINDS",
    "SPLITS",
    "STRUCTURAL_KINDS",
    "Category",
    "CategoryReport",
    "DefectSpec",
    "GenerationReport",
    "GeneratorConfig",
    "Sample",
    "SplitCounts",
    "generate",
    "make_sample",
    "parse_image_size",
    "write_contact_sheet",
]
