"""Frozen local feature extraction network Phi_L: four taps at strides 4/8/16/32 (docs/model.md, Encoder).

Two kinds of backbone:

* Swin-T (``swin_*`` timm models): the paper's *stage-input* taps. With timm >= 0.9 patch merging
  sits at the start of each stage, so E1 = patch embedding, E2 = stage-2 downsample of the stage-1
  block output, E3 = stage-3 downsample of the stage-2 block output, E4 = stage-4 downsample of the
  stage-3 block output. ``features_only`` would give post-block, pre-merge tensors: different. The
  modules the taps never reach (stage-4 blocks, final norm, head) are dropped after the strict load.
* Any timm CNN with a 4/8/16/32 ``features_only`` pyramid (default ``tf_efficientnet_lite0``,
  24/40/112/320 channels).

Both return NCHW tensors; Swin's NHWC layout is converted here and nowhere else. The encoder is
frozen three ways: ``requires_grad_(False)``, ``train()`` always leaves it in eval mode, and its
forward runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from glcf.model.weights import backbone_normalization, create_backbone

__all__ = ["FrozenEncoder", "PyramidEncoder", "SwinStageInputEncoder", "build_encoder"]

TAP_REDUCTIONS = (4, 8, 16, 32)


class FrozenEncoder(nn.Module):
    """Base class: a frozen backbone that returns four NCHW taps.

    Attributes:
        channels: widths of the taps E1..E4.
        mean: input normalisation mean of the pretrained backbone (timm pretrained_cfg).
        std: input normalisation std.
    """

    channels: tuple[int, int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def freeze(self) -> None:
        """Stop gradients and switch to eval mode (called once all submodules exist)."""
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Keep eval mode whatever ``mode`` is (no DropPath / BatchNorm updates in the frozen encoder)."""
        return super().train(False)

    def taps(self, x: Tensor, depth: int = 4) -> list[Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor, depth: int = 4) -> list[Tensor]:
        """Compute the taps without gradient.

        Args:
            x: normalised images ``[B, 3, S, S]``.
            depth: how many taps, from the first: the network stops after the last one asked for.

        Returns:
            ``[E1, E2, E3, E4][:depth]``, each ``[B, C_k, S / 2**(k+1), S / 2**(k+1)]``.
        """
        with torch.no_grad():
            return self.taps(x, depth)


class SwinStageInputEncoder(FrozenEncoder):
    """Swin Transformer with the paper's stage-input taps E1..E4 (docs/model.md, Encoder).

    Args:
        backbone: a timm ``SwinTransformer`` (weights already loaded); its unused tail is removed.
        mean: input normalisation mean.
        std: input normalisation std.
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if len(backbone.layers) != 4:
            msg = f"encoder.name: expected a 4-stage Swin Transformer, got {len(backbone.layers)} stages"
            raise ValueError(msg)
        backbone.layers[3].blocks = nn.Sequential()  # stage-4 blocks: after E4, never used
        backbone.norm = nn.Identity()
        backbone.head = nn.Identity()
        self.backbone = backbone
        self.channels = tuple(int(info["num_chs"]) for info in backbone.feature_info)  # type: ignore[assignment]
        self.mean, self.std = mean, std
        self.freeze()

    def taps(self, x: Tensor, depth: int = 4) -> list[Tensor]:
        layers = self.backbone.layers
        e = self.backbone.patch_embed(x)  # E1 [B, S/4, S/4, C]
        out = [e]
        for i in range(min(depth, 4) - 1):
            e = layers[i + 1].downsample(layers[i].blocks(e))  # E_{i+2}: merge of stage-(i+1) block output
            out.append(e)
        return [t.permute(0, 3, 1, 2).contiguous() for t in out]  # NHWC -> NCHW


def _feature_key_to_model_key(key: str, model_keys: set[str]) -> str | None:
    """Map a timm features_only key to the classifier's key (undo ``flatten_sequential`` renaming)."""
    if key in model_keys:
        return key
    unflattened = re.sub(r"^([A-Za-z_]+?)_(\d+)\.", r"\1.\2.", key)
    return unflattened if unflattened in model_keys else None


class PyramidEncoder(FrozenEncoder):
    """A timm CNN through ``features_only`` at the taps whose reductions are 4, 8, 16 and 32.

    The classifier is built and loaded strictly first (:func:`glcf.model.weights.create_backbone`); the
    ``features_only`` network is then built and given every one of its tensors from that state, so a
    checkpoint that misses or renames a key fails loudly.

    Args:
        name: timm model name.
        classifier: the full timm model holding the weights.
        mean: input normalisation mean.
        std: input normalisation std.
    """

    def __init__(self, name: str, classifier: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        import timm

        super().__init__()
        info = getattr(classifier, "feature_info", None)
        if not info:
            msg = f"encoder.name: {name!r} exposes no feature pyramid (feature_info) in timm"
            raise ValueError(msg)
        reductions = [int(f["reduction"]) for f in info]
        out_indices = []
        for r in TAP_REDUCTIONS:
            hits = [i for i, red in enumerate(reductions) if red == r]
            if not hits:
                msg = (
                    f"encoder.name: {name!r} has no feature map at stride {r}; GLCF needs a 4/8/16/32 pyramid "
                    f"(its reductions are {reductions})"
                )
                raise ValueError(msg)
            out_indices.append(hits[-1])  # the deepest map at that stride
        features = timm.create_model(name, pretrained=False, features_only=True, out_indices=tuple(out_indices))
        source = classifier.state_dict()
        keys = set(source)
        mapped = {}
        for key in features.state_dict():
            src = _feature_key_to_model_key(key, keys)
            if src is None:
                msg = f"encoder: features_only key {key!r} of {name!r} has no counterpart in the classifier"
                raise RuntimeError(msg)
            mapped[key] = source[src]
        features.load_state_dict(mapped, strict=True)
        self.backbone = features
        self.out_indices = tuple(out_indices)
        self.channels = tuple(int(c) for c in features.feature_info.channels())  # type: ignore[assignment]
        self.mean, self.std = mean, std
        self.freeze()

    def taps(self, x: Tensor, depth: int = 4) -> list[Tensor]:
        if depth < len(self.out_indices):
            first = _first_taps(self.backbone, x, depth)
            if first is not None:
                return first
        return list(self.backbone(x))[:depth]


def _first_taps(net: nn.Module, x: Tensor, depth: int) -> list[Tensor] | None:
    """The first ``depth`` taps of a timm ``features_only`` network, stopping after the last one; ``None`` for
    a kind of network not known here. Hand-written: timm's feature networks always run to their last tap."""
    out: list[Tensor] = []
    if hasattr(net, "return_layers") and hasattr(net, "items"):  # FeatureListNet: a flat sequence of modules
        for name, module in net.items():
            x = module(x)
            if name in net.return_layers:
                out.append(x)
                if len(out) == depth:
                    return out
    elif getattr(net, "feature_hooks", True) is None and hasattr(net, "_stage_out_idx"):  # EfficientNetFeatures
        x = net.bn1(net.conv_stem(x))
        out += [x] if 0 in net._stage_out_idx else []
        for i, block in enumerate(net.blocks):
            if len(out) == depth:
                return out
            x = block(x)
            out += [x] if i + 1 in net._stage_out_idx else []
    return None


def build_encoder(name: str, weights: str, image_size: int = 224) -> FrozenEncoder:
    """Build the frozen encoder for a timm backbone.

    Args:
        name: timm model name (``swin_*`` for stage-input taps, otherwise a CNN pyramid).
        weights: weight source (see :mod:`glcf.model.weights`).
        image_size: input side in pixels (Swin needs it at construction).

    Raises:
        glcf.model.weights.WeightsUnavailableError: pretrained weights asked for but not available.
        ValueError: the backbone has no 4/8/16/32 pyramid.
    """
    mean, std = backbone_normalization(name)
    if name.startswith("swin"):
        model = create_backbone(name, weights, img_size=image_size)
        return SwinStageInputEncoder(model, mean, std)
    model = create_backbone(name, weights)
    return PyramidEncoder(name, model, mean, std)
