"""GLCF model: frozen encoder, semantic bottleneck, three decoders (paper Sec. III; docs/model.md).

``x -> E1..E4`` (frozen) ``-> T0 = MS-PEM(E2, E3, E4) -> (G, O) = SAM(T0)``, then
``Phi_G(G)``, ``Psi_L(O)``, ``Psi_G(O)``, each a list of three NCHW maps matching E1..E3.

Ablations (config ``ablation``): ``semantic_bottleneck=False`` feeds E4 to all three decoders
(G = O = E4); ``ms_pem=False`` tokenises E4 only; ``sam=False`` uses a plain ViT encoder-decoder on
the patch tokens, its output serving as both G and O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glcf.config import GLCFConfig
from glcf.model.bottleneck import MSPatchEmbed, SemanticAggregation
from glcf.model.decoder import SwinDecoder
from glcf.model.encoder import FrozenEncoder, build_encoder
from glcf.model.features import GLCFFeatures
from glcf.model.memory import NormalMemory

logger = logging.getLogger(__name__)

__all__ = ["GLCFModel", "build_glcf", "channel_layer_norm"]


def channel_layer_norm(t: Tensor, eps: float = 1e-5) -> Tensor:
    """Parameter-free LayerNorm over the channels of ``[B, C, H, W]`` at every position (same shape back).

    Why: the decoders end in LayerNorm (SUNet patch expanding), so their outputs start at unit scale
    and can only grow by their LayerNorm gains, about ``lr`` per step. Swin-T taps are LayerNorm
    outputs (or linear maps of them) and match that scale; CNN taps do not (tf_efficientnet_lite0:
    RMS 8-10), so without this the decoders spend the whole training on the magnitude and the local
    map measures feature energy instead of reconstruction error.
    """
    return F.layer_norm(t.permute(0, 2, 3, 1), (t.shape[1],), eps=eps).permute(0, 3, 1, 2).contiguous()


class GLCFModel(nn.Module):
    """The GLCF network. Build it with :func:`build_glcf`.

    Args:
        config: the configuration it was built from (kept for checkpoints).
        encoder: frozen encoder returning E1..E4.
        ms_pem: multi-scale patch embedding, or ``None`` without semantic bottleneck.
        sam: semantic aggregation module, or ``None`` without semantic bottleneck.
        global_correspondence: Phi_G.
        local_estimation: Psi_L.
        global_estimation: Psi_G.
        pem_taps: indices (into E1..E4) of the taps MS-PEM reads.

    Attributes:
        mean: input normalisation mean of the encoder (apply it in the data pipeline).
        std: input normalisation std.

    Example:
        >>> from glcf import build_glcf, preset
        >>> model = build_glcf(preset("tiny"))
        >>> feats = model(torch.randn(2, 3, 64, 64))
        >>> [f.shape[1] for f in feats.local_est]
        [24, 40, 112]
    """

    def __init__(
        self,
        config: GLCFConfig,
        encoder: FrozenEncoder,
        ms_pem: MSPatchEmbed | None,
        sam: SemanticAggregation | None,
        global_correspondence: SwinDecoder,
        local_estimation: SwinDecoder,
        global_estimation: SwinDecoder,
        pem_taps: tuple[int, ...] = (1, 2, 3),
    ) -> None:
        super().__init__()
        if (ms_pem is None) != (sam is None):
            msg = "GLCFModel: ms_pem and sam must both be given or both be None"
            raise ValueError(msg)
        self.config = config
        self.encoder = encoder
        self.ms_pem = ms_pem
        self.sam = sam
        self.global_correspondence = global_correspondence
        self.local_estimation = local_estimation
        self.global_estimation = global_estimation
        self.pem_taps = pem_taps
        c1, c2, c3 = encoder.channels[:3]
        stride, multiscale = config.scoring.layout_stride, config.scoring.layout_multiscale
        layout_dim, cells = NormalMemory.layout_dims(
            encoder.channels, config.image_size, stride, multiscale, config.zoomed_size
        )
        self.memory = NormalMemory(
            c2 + c3,
            layout_dim,
            coreset_fraction=config.scoring.coreset_fraction,
            cells=cells,
            position_dim=c1 + c2,
            layout_stride=stride,
            layout_multiscale=multiscale,
        )
        self.mean: tuple[float, ...] = encoder.mean
        self.std: tuple[float, ...] = encoder.std

    def train(self, mode: bool = True) -> GLCFModel:
        """Set train/eval mode for the trainable parts; the encoder always stays in eval."""
        super().train(mode)
        self.encoder.train(False)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the frozen encoder's (what the optimiser gets)."""
        return [p for name, p in self.named_parameters() if not name.startswith("encoder.")]

    def raw_taps(self, x: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """The frozen encoder's taps of normalised images ``[B, 3, S, S]``, or ``x`` itself when it already
        is such a list (:mod:`glcf.training.feature_cache`), on the model's device."""
        if isinstance(x, list | tuple):
            device = next(self.parameters()).device
            return [t.to(device) for t in x]
        return self.encoder(x)

    def encode(self, x: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """Frozen taps ``[E1..E4]`` of normalised images ``[B, 3, S, S]`` (no gradient).

        With ``encoder.tap_norm="layernorm"`` every tap is normalised over its channels at each
        position (parameter-free LayerNorm), as the Swin taps already are.
        """
        return self._tap_norm(self.raw_taps(x))

    def _tap_norm(self, taps: list[Tensor]) -> list[Tensor]:
        if self.config.encoder.tap_norm == "layernorm":
            return [channel_layer_norm(t) for t in taps]
        return taps

    def represent(self, taps: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Global semantic and original patch representations ``(G, O)``, each ``[B, C4, S/32, S/32]``."""
        if self.ms_pem is None or self.sam is None:
            return taps[3], taps[3]  # "w/o SB": the deepest tap straight to every decoder
        t0 = self.ms_pem([taps[i] for i in self.pem_taps])  # [B, L, D]
        return self.sam(t0)

    def forward(self, x: Tensor | Sequence[Tensor]) -> GLCFFeatures:
        """Run the encoder, the bottleneck and the three decoders.

        Args:
            x: normalised images ``[B, 3, S, S]``, or the frozen encoder's raw taps of such images
                (:mod:`glcf.training.feature_cache`: training computes them once, not every epoch).

        Returns:
            GLCFFeatures with lists ``[scale1, scale2, scale3]`` of ``[B, C_s, S / 2**(s+1), ...]``.
        """
        raw = self.raw_taps(x)
        taps = self._tap_norm(raw)
        global_corr, local_est, global_est = self.heads(*self.represent(taps))
        patch = layout = position = None
        if not self.training and self.memory.filled:  # the memories keep the encoder's own (raw) features
            patch = self.memory.patch_distance(raw)
            layout = self.memory.layout_distance(raw, self.config.scoring.layout_match, self.zoomed_taps(x))
            if self.config.scoring.position_memory:
                position = self.memory.position_distance(raw)
        return GLCFFeatures(taps[:3], global_corr, local_est, global_est, patch, layout, position)

    @torch.no_grad()
    def fill_memory(self, images: Iterable[Tensor | Sequence[Tensor]], seed: int = 0) -> None:
        """Fill the normal memories (:mod:`glcf.model.memory`) from batches of normalised training images
        (or their raw encoder taps, as :meth:`forward` takes them)."""
        device = next(self.parameters()).device

        def inputs(x: Tensor | Sequence[Tensor]) -> list[Tensor] | tuple[list[Tensor], list[Tensor]]:
            x = x if isinstance(x, list | tuple) else x.to(device)
            zoomed = self.zoomed_taps(x)
            return self.raw_taps(x) if zoomed is None else (self.raw_taps(x), zoomed)

        self.memory.fill((inputs(x) for x in images), seed=seed)

    @property
    def memory_reads_images(self) -> bool:
        """Whether filling the memories needs the images themselves (their cached taps do not do)."""
        return self.config.zoomed_size != self.config.image_size and self.memory.zoomed_depth > 0

    def zoomed_taps(self, x: Tensor | Sequence[Tensor]) -> list[Tensor] | None:
        """The encoder's first raw taps (as many as the stride-8 layout grids read) of the input up-sampled
        to ``config.zoomed_size`` (``scoring.layout_zoom``); ``None`` without a zoom.

        Raises:
            ValueError: ``x`` is cached encoder taps, from which no up-sampled input can be made.
        """
        if not self.memory_reads_images:
            return None
        size = self.config.zoomed_size
        if isinstance(x, list | tuple):
            msg = f"scoring.layout_zoom={self.config.scoring.layout_zoom}: the layout memory reads images, not taps"
            raise ValueError(msg)
        zoomed = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        # channels-last: the same taps, and the early blocks' depthwise convolutions run faster on a CPU
        return self.encoder(zoomed.contiguous(memory_format=torch.channels_last), depth=self.memory.zoomed_depth)

    def heads(self, g: Tensor, o: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """The three decoders on the representations of :meth:`represent`: global correspondence (from ``g``),
        local and global estimation (from ``o``)."""
        return self.global_correspondence(g), self.local_estimation(o), self.global_estimation(o)


def build_glcf(cfg: GLCFConfig) -> GLCFModel:
    """Build a :class:`GLCFModel` from its configuration (the only config -> constructor mapping).

    Raises:
        glcf.model.weights.WeightsUnavailableError: pretrained encoder weights asked for but unavailable.
        ValueError: a backbone without a 4/8/16/32 pyramid, or sizes that do not fit together.

    Example:
        >>> model = build_glcf(preset("tiny"))
        >>> opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    """
    size = cfg.image_size
    encoder = build_encoder(cfg.encoder.name, cfg.encoder.weights, size)
    c1, c2, c3, c4 = encoder.channels
    grid32 = size // 32
    b, ab = cfg.bottleneck, cfg.ablation
    ms_pem = sam = None
    pem_taps: tuple[int, ...] = ()
    if ab.semantic_bottleneck:
        p2, p3, p4 = b.patch_sizes
        if ab.ms_pem:
            pem_taps = (1, 2, 3)
            ms_pem = MSPatchEmbed((c2, c3, c4), (size // 8, size // 16, size // 32), (p2, p3, p4), b.dim)
        else:
            pem_taps = (3,)
            ms_pem = MSPatchEmbed((c4,), (grid32,), (p4,), b.dim)
        sam = SemanticAggregation(
            dim=b.dim,
            depth=b.depth,
            encoder_heads=b.encoder_heads,
            decoder_heads=b.decoder_heads,
            mlp_ratio=b.mlp_ratio,
            grid=cfg.token_grid,
            out_dim=c4,
            out_patch=p4,
            layout=b.layout if ab.sam else "plain",
            semantic_tokens=b.semantic_tokens,
            token_init_std=b.token_init_std,
        )
    elif not (ab.ms_pem and ab.sam):
        logger.warning("ablation.semantic_bottleneck=false: ablation.ms_pem / ablation.sam have no effect")
    d = cfg.decoder

    def decoder() -> SwinDecoder:
        return SwinDecoder(
            in_dim=c4,
            widths=(c1, c2, c3),
            in_size=grid32,
            depths=d.depths,
            head_dim=d.head_dim,
            window_size=d.window_size,
            mlp_ratio=d.mlp_ratio,
            drop_path_rate=d.drop_path_rate,
        )

    model = GLCFModel(cfg, encoder, ms_pem, sam, decoder(), decoder(), decoder(), pem_taps=pem_taps)
    return model.train()
