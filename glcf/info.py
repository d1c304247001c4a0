"""Model summary: parameter counts per module and output shapes (docs/model.md, Parameter counts).

Built with random encoder weights (``encoder.weights = none``) so that it works offline; the counts
and shapes do not depend on the weights.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from glcf.config import GLCFConfig, config_to_dict

logger = logging.getLogger(__name__)

__all__ = ["MODULES", "format_model_info", "model_info"]

#: Module attributes of GLCFModel, in data-flow order (``None`` when an ablation removes one).
MODULES = ("encoder", "ms_pem", "sam", "global_correspondence", "local_estimation", "global_estimation")


def _count(module: nn.Module | None) -> dict[str, int]:
    if module is None:
        return {"trainable": 0, "frozen": 0}
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def model_info(cfg: GLCFConfig) -> dict[str, Any]:
    """Parameter counts per module and the shapes of every branch and scale for one image.

    Args:
        cfg: model configuration; its encoder weights are replaced by ``none``.

    Returns:
        A JSON-ready dict with keys ``config`` (the resolved configuration), ``parameters``
        (``{module: {"trainable": n, "frozen": n}}`` plus ``bottleneck`` = ms_pem + sam and ``total``)
        and ``shapes`` (``encoder`` E1..E4, ``representations`` G and O, and the three scales of
        ``global_corr``, ``local_est`` and ``global_est``, each ``[B, C, H, W]`` with B = 1).
    """
    from glcf.model import build_glcf

    cfg = cfg.replace(encoder={"weights": "none"})
    model = build_glcf(cfg).eval()
    params = {name: _count(getattr(model, name)) for name in MODULES}
    params["bottleneck"] = {k: params["ms_pem"][k] + params["sam"][k] for k in ("trainable", "frozen")}
    params["total"] = _count(model)
    x = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        taps = model.encode(x)
        g, o = model.represent(taps)
        heads = dict(zip(("global_corr", "local_est", "global_est"), model.heads(g, o), strict=True))
    shapes: dict[str, Any] = {
        "encoder": [list(t.shape) for t in taps],
        "representations": {"global": list(g.shape), "original": list(o.shape)},
    }
    for branch in ("global_corr", "local_est", "global_est"):
        shapes[branch] = [list(t.shape) for t in heads[branch]]
    return {"config": config_to_dict(cfg), "parameters": params, "shapes": shapes}


def format_model_info(info: dict[str, Any]) -> str:
    """Human-readable table of :func:`model_info`'s result."""
    cfg = info["config"]
    lines = [
        f"GLCF  encoder={cfg['encoder']['name']}  image_size={cfg['image_size']}  "
        f"layout={cfg['bottleneck']['layout']}  D={cfg['bottleneck']['dim']}  depth={cfg['bottleneck']['depth']}",
        "",
        f"{'module':<24}{'trainable':>14}{'frozen':>14}",
    ]
    for name in (*MODULES, "bottleneck", "total"):
        p = info["parameters"][name]
        lines.append(f"{name:<24}{p['trainable']:>14,}{p['frozen']:>14,}")
    lines += ["", f"{'output':<24}shape [B, C, H, W]"]
    for i, s in enumerate(info["shapes"]["encoder"]):
        lines.append(f"{f'encoder E{i + 1}':<24}{s}")
    for key, s in info["shapes"]["representations"].items():
        lines.append(f"{f'bottleneck {key}':<24}{s}")
    for branch in ("global_corr", "local_est", "global_est"):
        for i, s in enumerate(info["shapes"][branch]):
            lines.append(f"{f'{branch} scale {i + 1}':<24}{s}")
    return "\n".join(lines)
