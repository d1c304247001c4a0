"""Pipeline stages: one plain function per stage with typed inputs and outputs.

``dvc.yaml`` runs them through ``glcf stage <name> <category>``; the Prefect tasks call the same
functions, so both orchestrators run one implementation of each step.
"""

from __future__ import annotations

STAGES = ("data", "prepare", "train", "calibrate", "evaluate", "register", "promote")
