"""Scoring setups the unit tests share."""

#: The calibrated fusion with all three memories (the default's scoring on the tiny preset).
CALIBRATED = {
    "fusion": "calibrated",
    "memory": True,
    "position_memory": True,
    "layout_memory": True,
    "image_score": "max",
}
