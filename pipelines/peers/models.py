"""Peer baselines for ``glcf benchmark --peers``: anomalib's PatchCore and PaDiM on GLCF's own terms.

Each peer is anomalib's torch model driven directly, without Lightning's trainer or an anomalib
datamodule: the training images of the category (``glcf.data.dataset.ImageDataset``, the same
resize and normalisation as GLCF at the same image size) go through the model in train mode to
collect embeddings, then the memory bank (PatchCore, coreset sampling) or the Gaussians (PaDiM) are
built, and the test images go through it in eval mode for image scores and anomaly maps. Scoring is
left to the caller (``glcf.evaluation``); anomalib's own metrics are never used.

The backbone is built with ``pre_trained=False`` and gets the weights GLCF uses: the full timm
classifier is loaded strictly by :func:`glcf.model.weights.create_backbone` and its tensors are copied,
strictly again, into anomalib's ``features_only`` extractor. anomalib silently drops a layer name
that timm's ``feature_info`` does not know, so the layers it kept, their channels and strides are
checked against the request after construction (:func:`check_layers`).

anomalib is an optional extra (``glcf[peers]``); it is imported only when a peer runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'glcf[peers]' (or: uv sync --extra peers)"


class PeerError(ValueError):
    """A peer that cannot run as asked: unknown name, missing extra, or layers anomalib did not keep."""


@dataclass(frozen=True)
class PeerSpec:
    """One peer: anomalib's model, the backbone layers it reads and its own settings."""

    name: str
    layers: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


#: PatchCore reads strides 8 and 16 (anomalib's layer2/layer3 for ResNets); PaDiM strides 4, 8, 16.
PEERS: dict[str, PeerSpec] = {
    "patchcore": PeerSpec("patchcore", ("blocks.2", "blocks.4"), {"coreset_sampling_ratio": 0.1, "num_neighbors": 9}),
    "padim": PeerSpec("padim", ("blocks.1", "blocks.2", "blocks.4"), {"n_features": 100}),
}


@dataclass(frozen=True)
class LayerInfo:
    """A backbone layer as anomalib's extractor returns it."""

    name: str
    channels: int
    stride: int


@dataclass(frozen=True)
class PeerResult:
    """A fitted peer's outputs on the test split (in ``data.test`` order) and its timings.

    Attributes:
        image_scores: ``[N]`` anomalib's image score per test image.
        anomaly_maps: ``[N, S, S]`` float32 maps at the model's input size.
        validation_scores: image scores of the held-out normal images (for a threshold).
        fit_seconds: wall time of the fit (image loading, embedding, memory bank / Gaussians).
        images_per_second: test images per second of a timed inference pass on pre-loaded tensors.
    """

    name: str
    backbone: str
    weights: str
    image_size: int
    layers: tuple[LayerInfo, ...]
    options: dict[str, Any]
    image_scores: np.ndarray
    anomaly_maps: np.ndarray
    validation_scores: np.ndarray
    fit_seconds: float
    images_per_second: float
    threads: int
    device: str
    n_train: int

    def layer_text(self) -> str:
        """``blocks.2/8+blocks.4/16``: the layers and their strides."""
        return "+".join(f"{layer.name}/{layer.stride}" for layer in self.layers)

    def params(self) -> dict[str, str]:
        """What the MLflow run of the peer logs as parameters."""
        out = {
            "peer": self.name,
            "backbone": self.backbone,
            "weights": self.weights,
            "image_size": str(self.image_size),
            "layers": ",".join(layer.name for layer in self.layers),
            "layer_strides": ",".join(str(layer.stride) for layer in self.layers),
            "layer_channels": ",".join(str(layer.channels) for layer in self.layers),
            "threads": str(self.threads),
            "device": self.device,
            "n_train": str(self.n_train),
        }
        return out | {f"peer.{k}": str(v) for k, v in self.options.items()}


def parse_peers(names: Sequence[str] | None) -> list[str]:
    """Validate a list of peer names (empty or None: no peers).

    Raises:
        PeerError: an unknown or repeated name.
    """
    chosen = [n.strip().lower() for n in (names or []) if n.strip()]
    for name in chosen:
        if name not in PEERS:
            msg = f"unknown peer {name!r} (peers: {', '.join(PEERS)})"
            raise PeerError(msg)
    if len(set(chosen)) != len(chosen):
        msg = f"peers: listed twice in {chosen}"
        raise PeerError(msg)
    return chosen


def require_anomalib() -> str:
    """anomalib's version; a one-line :class:`PeerError` naming the extra when it is not installed."""
    try:
        import anomalib
    except ImportError as err:
        msg = f"peer baselines need anomalib, which is not installed ({err}): {INSTALL_HINT}"
        raise PeerError(msg) from None
    return str(anomalib.__version__)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op torch threads (None: keep the current number); restores it after."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            msg = f"threads: must be a positive integer, got {threads!r}"
            raise PeerError(msg)
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def build_model(spec: PeerSpec, backbone: str) -> Any:
    """anomalib's torch model of ``spec`` with a randomly initialised backbone (``pre_trained=False``)."""
    require_anomalib()
    with warnings.catch_warnings():  # anomalib's own imports of deprecated timm / dinov2 modules
        warnings.simplefilter("ignore", FutureWarning)
        from anomalib.models.image.padim.torch_model import PadimModel
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    if spec.name == "patchcore":
        return PatchcoreModel(
            layers=list(spec.layers),
            backbone=backbone,
            pre_trained=False,
            num_neighbors=spec.options["num_neighbors"],
        )
    return PadimModel(
        backbone=backbone, layers=list(spec.layers), pre_trained=False, n_features=spec.options["n_features"]
    )


def load_backbone_weights(extractor: Any, backbone: str, weights: str) -> list[dict[str, Any]]:
    """Copy GLCF's backbone weights into anomalib's extractor (strictly); returns timm's ``feature_info``.

    Raises:
        PeerError: the extractor has a tensor the full classifier lacks.
        glcf.model.weights.WeightsUnavailableError: the weights cannot be had.
    """
    from glcf.model.weights import create_backbone

    full = create_backbone(backbone, weights)
    source = full.state_dict()
    target = extractor.feature_extractor
    missing = sorted(set(target.state_dict()) - set(source))
    if missing:
        msg = f"anomalib's {backbone} extractor has tensors the {weights} weights lack: {missing[:5]}"
        raise PeerError(msg)
    target.load_state_dict({k: source[k] for k in target.state_dict()}, strict=True)
    return list(full.feature_info)


def check_layers(
    extractor: Any, feature_info: Sequence[dict[str, Any]], layers: Sequence[str], image_size: int
) -> tuple[LayerInfo, ...]:
    """The layers anomalib's extractor really returns, checked against the request.

    Checks that every asked layer was kept, in order, that its channels and stride are those of
    timm's ``feature_info`` for that module, and that a forward pass at ``image_size`` returns maps
    of that shape.

    Raises:
        PeerError: a layer was dropped or renamed, or its channels or stride differ.
    """
    import torch

    known = {info["module"]: (int(info["num_chs"]), int(info["reduction"])) for info in feature_info}
    kept = list(extractor.layers)
    if kept != list(layers) or any(name not in known for name in layers):
        msg = f"anomalib kept layers {kept} of the {list(layers)} asked; the backbone has {list(known)}"
        raise PeerError(msg)
    expected = [known[name] for name in layers]
    got = list(zip(extractor.out_dims, extractor.reductions, strict=True))
    if got != expected:
        msg = f"anomalib's layers {kept}: (channels, stride) {got}, expected {expected}"
        raise PeerError(msg)
    with torch.no_grad():
        maps = extractor(torch.zeros(1, 3, image_size, image_size))
    for name, (channels, stride) in zip(layers, expected, strict=True):
        side = math.ceil(image_size / stride)
        if tuple(maps[name].shape[1:]) != (channels, side, side):
            msg = f"layer {name}: output {tuple(maps[name].shape)}, expected (1, {channels}, {side}, {side})"
            raise PeerError(msg)
    return tuple(LayerInfo(name, c, s) for name, (c, s) in zip(layers, expected, strict=True))


def _batches(samples: Sequence[Any], image_size: int, mean: Any, std: Any, batch_size: int) -> Iterator[Any]:
    import torch

    from glcf.data.dataset import ImageDataset

    dataset = ImageDataset(samples, image_size, mean, std)
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        yield torch.stack([dataset[i]["image"] for i in range(start, stop)])


def pin_malloc_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Serve allocations above ``threshold`` bytes by ``mmap`` for the rest of the process (glibc only).

    PatchCore's greedy coreset allocates and frees one ``[n_patches, d]`` tensor per selected patch
    (tens of MB). glibc raises its mmap threshold after such a free, the next ones come from the
    heap, and small allocations in between keep the heap from shrinking: the process grew by one
    tensor per step and was killed at 23 GB. A fixed threshold returns each tensor to the system.
    Returns whether the setting was applied.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def fit_model(model: Any, spec: PeerSpec, batches: Iterator[Any], device: Any) -> int:
    """Collect the training embeddings and build the memory bank or the Gaussians; returns the image count."""
    model.train()
    n = 0
    for images in batches:
        model(images.to(device))
        n += len(images)
    if n == 0:
        msg = f"{spec.name}: no training images"
        raise PeerError(msg)
    if spec.name == "patchcore":
        pin_malloc_mmap_threshold()
        model.subsample_embedding(spec.options["coreset_sampling_ratio"])
    else:
        model.fit()
    model.eval()
    return n


def infer(model: Any, images: Any, batch_size: int, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Image scores ``[N]`` and maps ``[N, S, S]`` of pre-loaded images ``[N, 3, S, S]`` (eval mode)."""
    import torch

    scores, maps = [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out = model(images[start : start + batch_size].to(device))
            scores.append(out.pred_score.reshape(-1).float().cpu().numpy())
            maps.append(out.anomaly_map.reshape(len(out.pred_score), *images.shape[-2:]).float().cpu().numpy())
    if not scores:
        size = images.shape[-1]
        return np.zeros(0, np.float32), np.zeros((0, size, size), np.float32)
    return np.concatenate(scores), np.concatenate(maps)


def timed_inference(model: Any, images: Any, batch_size: int, device: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`infer` after one warm-up image; returns scores, maps and images per second."""
    import torch

    if len(images):
        infer(model, images[:1], 1, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    scores, maps = infer(model, images, batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    return scores, maps, (len(images) / elapsed if elapsed > 0 else float("nan"))


def fit_and_score(
    name: str,
    data: Any,
    image_size: int,
    *,
    backbone: str = "tf_efficientnet_lite0",
    weights: str = "offline-package",
    batch_size: int = 16,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
) -> PeerResult:
    """Fit peer ``name`` on ``data.train`` and score ``data.validation`` and ``data.test``.

    Args:
        name: a key of :data:`PEERS`.
        data: a ``glcf.data.CategoryData``.
        image_size: model input side ``S`` (GLCF's ``model.image_size``).
        backbone: timm model name (GLCF's encoder).
        weights: GLCF weight source (``offline-package``, ``file:<path>``, ``hub``, ``none``).
        batch_size: images per forward pass.
        seed: seeds PaDiM's channel subset and PatchCore's coreset sampling (its random projection draws
            from numpy's global generator, which is seeded for the fit and then restored).
        threads: intra-op torch threads for the fit and the timed pass (None: torch's current number).
        device: ``cpu``, ``cuda`` or ``auto``.

    Raises:
        PeerError: unknown peer, anomalib missing, or layers not kept as asked.
    """
    import torch

    from glcf.model.weights import backbone_normalization
    from glcf.runtime import resolve_device

    spec = PEERS[parse_peers([name])[0]]
    dev = resolve_device(device)
    mean, std = backbone_normalization(backbone)
    with torch_threads(threads) as used, _numpy_seeded(seed):
        torch.manual_seed(seed)
        model = build_model(spec, backbone)
        info = load_backbone_weights(model.feature_extractor, backbone, weights)
        layers = check_layers(model.feature_extractor, info, spec.layers, image_size)
        model.to(dev)
        t0 = time.perf_counter()
        n_train = fit_model(model, spec, _batches(data.train, image_size, mean, std, batch_size), dev)
        fit_seconds = time.perf_counter() - t0
        val_scores, scores, maps, rate = _score_splits(model, data, image_size, mean, std, batch_size, dev)
    logger.info(
        "%s %s: fit %.1f s on %d images, %.1f test images/s (%d threads, %s)",
        data.category, name, fit_seconds, n_train, rate, used, dev,
    )  # fmt: skip
    return PeerResult(
        name=name, backbone=backbone, weights=weights, image_size=image_size, layers=layers,
        options=dict(spec.options), image_scores=scores.astype(np.float64), anomaly_maps=maps.astype(np.float32),
        validation_scores=val_scores.astype(np.float64), fit_seconds=round(fit_seconds, 3),
        images_per_second=round(rate, 2), threads=used, device=str(dev), n_train=n_train,
    )  # fmt: skip


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded inside, restored after (anomalib's coreset projection uses it)."""
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002 - the generator anomalib draws from
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _score_splits(
    model: Any, data: Any, image_size: int, mean: Any, std: Any, batch_size: int, device: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Scores of the held-out normal images, then test scores, maps and images per second of a timed pass."""
    import torch

    validation = torch.cat([*_batches(data.validation, image_size, mean, std, batch_size)] or [torch.zeros(0)])
    val_scores, _ = infer(model, validation.reshape(-1, 3, image_size, image_size), batch_size, device)
    test = torch.cat(list(_batches(data.test, image_size, mean, std, batch_size)))
    scores, maps, rate = timed_inference(model, test, batch_size, device)
    return val_scores, scores, maps, rate
