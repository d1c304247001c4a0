"""Checkpoints: exact round trips, trainable-only content, strict keys, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glcf.config import config_to_dict
from glcf.inference.scoring import AnomalyScorer
from glcf.model import GLCFModel, build_glcf
from glcf.model.checkpoint import (
    CheckpointError,
    FullModel,
    LoadedCheckpoint,
    export_full_model,
    load_checkpoint,
    load_full_model,
    load_model_file,
    save_checkpoint,
)
from glcf.model.stats import NormStats
from glcf.presets import preset

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


def tiny(weights: str = "none", seed: int = 0) -> GLCFModel:
    torch.manual_seed(seed)
    model = build_glcf(preset("tiny", encoder={"weights": weights}))
    with torch.no_grad():  # move the trainable weights away from their init
        for p in model.trainable_parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def outputs(model: GLCFModel) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t for taps in model.eval()(X).scales for t in taps]


def assert_same_outputs(a: GLCFModel, b: GLCFModel) -> None:
    for x, y in zip(outputs(a), outputs(b), strict=True):
        assert torch.equal(x, y)


def test_offline_encoder_checkpoint_holds_only_trainable_weights_and_reproduces_outputs(tmp_path: Path) -> None:
    model = tiny("offline-package")
    path = save_checkpoint(
        tmp_path / "m.pt", model, epoch=7, history=[{"epoch": 7, "loss": 1.5}], extra={"category": "breakfast_box"}
    )
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]
    assert not any(k.startswith("encoder.") for k in raw["state_dict"])
    assert raw["frozen_state_dict"] is None
    trainable_ids = {id(p) for p in model.trainable_parameters()}
    trainable_names = {n for n, p in model.named_parameters() if id(p) in trainable_ids}
    assert trainable_names <= set(raw["state_dict"])
    assert set(raw["versions"]) == {"glcf", "torch", "timm", "python"}

    loaded = load_checkpoint(path)
    assert loaded.epoch == 7
    assert loaded.config == model.config
    assert config_to_dict(loaded.config) == raw["config"]
    assert loaded.history == [{"epoch": 7, "loss": 1.5}]
    assert loaded.extra == {"category": "breakfast_box"}
    assert not loaded.model.training
    assert_same_outputs(model, loaded.model)


def test_random_encoder_checkpoint_reproduces_outputs_exactly(tmp_path: Path) -> None:
    model = tiny("none", seed=0)
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=1)
    torch.manual_seed(99)  # a rebuilt random encoder would differ: its weights come from the file
    assert_same_outputs(model, load_checkpoint(path).model)


def _tamper(path: Path, out: Path, drop: str | None = None, add: str | None = None) -> None:
    raw = torch.load(path, weights_only=True)
    if drop:
        del raw["state_dict"][drop]
    if add:
        raw["state_dict"][add] = torch.zeros(1)
    torch.save(raw, out)


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", tiny(), epoch=1)
    key = next(iter(torch.load(path, weights_only=True)["state_dict"]))
    _tamper(path, tmp_path / "missing.pt", drop=key)
    with pytest.raises(CheckpointError, match=rf"missing\.pt.*1 missing.*{key}"):
        load_checkpoint(tmp_path / "missing.pt")
    _tamper(path, tmp_path / "extra.pt", add="decoder.not_a_weight")
    with pytest.raises(CheckpointError, match=r"extra\.pt.*1 unexpected.*decoder\.not_a_weight"):
        load_checkpoint(tmp_path / "extra.pt")


def test_truncated_foreign_and_missing_files_raise_clear_errors(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", tiny(), epoch=1)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable GLCF file"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a readable GLCF file"):
        load_checkpoint(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not a glcf\.checkpoint file"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match=r"absent\.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pt")
    export_full_model(tmp_path / "full.pt", tiny(), None)
    with pytest.raises(CheckpointError, match=r"full\.pt: not a glcf\.checkpoint file \(format: 'glcf\.full-model'\)"):
        load_checkpoint(tmp_path / "full.pt")


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    model = tiny()
    path = save_checkpoint(tmp_path / "last.pt", model, epoch=1)
    before = path.read_bytes()
    with pytest.raises(Exception, match="pickle"):  # a lambda cannot be pickled: the save dies midway
        save_checkpoint(path, model, epoch=2, extra={"bad": lambda: 0})
    assert path.read_bytes() == before
    assert load_checkpoint(path).epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


def test_full_export_round_trip_needs_no_weight_source(tmp_path: Path) -> None:
    model = tiny("offline-package")
    stats = NormStats(
        (1.0, 2.0, 3.0),
        (0.5, 0.5, 0.5),
        (4.0, 5.0, 6.0),
        (1.0, 1.0, 1.0),
        num_images=4,
        image_size=64,
        sigma=4.0,
        map_source="estimation",
    )
    path = export_full_model(tmp_path / "full.pt", model, stats, threshold=2.5, extra={"category": "juice"})
    raw = torch.load(path, weights_only=True)
    assert any(k.startswith("encoder.") for k in raw["state_dict"])  # the encoder travels with it

    full = load_full_model(path)
    assert full.model.config.encoder.weights == "none"  # built without fetching anything
    assert full.config.encoder.weights == "offline-package"
    assert (full.stats, full.threshold, full.extra) == (stats, 2.5, {"category": "juice"})
    assert_same_outputs(model, full.model)
    scored = AnomalyScorer(full.config.scoring, full.stats, 64)(full.model(X))
    assert scored.anomaly_map.shape == (2, 64, 64)

    raw["state_dict"].pop(next(iter(raw["state_dict"])))
    torch.save(raw, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"broken\.pt: weights do not match"):
        load_full_model(tmp_path / "broken.pt")


def test_load_model_file_reads_either_format(tmp_path: Path) -> None:
    model = tiny()
    ckpt = save_checkpoint(tmp_path / "last.pt", model, epoch=3)
    full = export_full_model(tmp_path / "full.pt", model, None, threshold=1.5)
    from_ckpt, from_full = load_model_file(ckpt), load_model_file(full)
    assert isinstance(from_ckpt, LoadedCheckpoint)
    assert from_ckpt.epoch == 3
    assert isinstance(from_full, FullModel)
    assert from_full.threshold == 1.5
    assert_same_outputs(model, from_ckpt.model)
    assert_same_outputs(model, from_full.model)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "other"}, foreign)
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not a glcf\.checkpoint or glcf\.full-model file"):
        load_model_file(foreign)


def test_detector_maps_at_the_original_size_are_the_evaluated_maps(tmp_path: Path) -> None:
    """Served maps are resized as the evaluation resizes them (one resize: anti-aliased when shrinking)."""
    import numpy as np

    from glcf.inference.detector import Detector
    from glcf.metrics.maps import resize_map

    stats = NormStats(
        (1.0,) * 3, (0.5,) * 3, (4.0,) * 3, (1.0,) * 3, num_images=4, image_size=64, sigma=4.0, map_source="estimation"
    )
    detector = Detector(export_full_model(tmp_path / "full.pt", tiny(), stats, threshold=1.5))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (90, 150, 3), dtype=np.uint8), rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)]
    original = detector.score(images, return_maps=True)
    model_size = detector.score(images, return_maps=True, map_size="model")
    for image, big, small in zip(images, original, model_size, strict=True):
        assert big.anomaly_map.shape == image.shape[:2]
        np.testing.assert_array_equal(big.anomaly_map, resize_map(small.anomaly_map, (image.shape[1], image.shape[0])))
