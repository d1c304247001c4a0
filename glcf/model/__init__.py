"""The GLCF network and what it is built from: encoder taps, semantic bottleneck, decoders, the memories
of normal images, weights and checkpoints. ``from glcf.model import GLCFModel, build_glcf`` is the entry."""

from __future__ import annotations

from glcf.model.network import GLCFModel, build_glcf, channel_layer_norm

__all__ = ["GLCFModel", "build_glcf", "channel_layer_norm"]
