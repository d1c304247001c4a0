"""Training engine on the tiny preset: real learning, frozen encoder, LR schedule, exact resume, NaN guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from data_trees import make_loco
from tensor_images import DictImages, random_images, trainable

from glcf.config import GLCFConfig
from glcf.data import ImageDataset, read_category
from glcf.engine import NonFiniteLossError, build_optimizer, build_scheduler, fit
from glcf.loss import GLCFLoss
from glcf.model import GLCFModel, build_glcf
from glcf.presets import preset


def images(n: int, seed: int = 1) -> torch.Tensor:
    return random_images(n, seed)


def tiny(seed: int = 0, **train: Any) -> GLCFModel:
    torch.manual_seed(seed)
    return build_glcf(preset("tiny", train={"epochs": 2, "batch_size": 2, **train}))


def test_fit_learns_a_tiny_dataset() -> None:
    model = tiny(epochs=6, batch_size=4, lr=3e-3, lr_final=3e-3)
    data = images(4)
    loss_fn = GLCFLoss(model.config.loss)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return loss_fn(model(data))[0].item()

    before = eval_loss()
    result = fit(model, DictImages(data), progress=False)
    after = eval_loss()
    assert after < 0.75 * before, (before, after)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.epochs_run == result.final_epoch == 6
    assert result.images_per_second > 0
    assert result.checkpoint_path is None  # no checkpoint_dir given
    assert {"loss/local_estimation", "loss/global_correspondence", "loss/global_estimation"} <= set(result.history[0])


@pytest.mark.parametrize("cache_features", [True, False])
def test_encoder_stays_frozen_and_in_eval_during_fit(cache_features: bool, tmp_path: Path) -> None:
    model = tiny(epochs=2, batch_size=4, cache_features=cache_features)
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}  # incl. BatchNorm stats
    seen: list[tuple[bool, bool]] = []
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append((m.training, torch.is_grad_enabled())))
    trainable_before = trainable(model)

    records: list[dict[str, Any]] = []
    fit(model, list(images(4)), checkpoint_dir=tmp_path, on_epoch_end=records.append, progress=False)

    # cached: one pass over the 4 images feeds both epochs and the memory fill; else 2 epochs x 1 step + the fill
    assert len(seen) == (1 if cache_features else 3)
    assert not any(training for training, _ in seen)
    assert model.training  # the trainable parts were in train mode
    assert model.memory.filled  # the normal memories come from the training images after the last epoch
    assert model.memory.layout_bank.shape[0] == 4
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, encoder_before[k]), k
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    changed = [k for k, v in trainable(model).items() if not torch.equal(v, trainable_before[k])]
    assert changed  # the trainable parts did learn
    opt_ids = {id(p) for g in build_optimizer(model, model.config.train).param_groups for p in g["params"]}
    assert not opt_ids & {id(p) for p in model.encoder.parameters()}
    assert [r["epoch"] for r in records] == [1, 2]
    assert (tmp_path / "last.pt").is_file()


def test_optimizer_and_lr_step_schedule() -> None:
    model = tiny()
    cfg = preset("tiny", train={"epochs": 500}).train
    opt = build_optimizer(model, cfg)
    group = opt.param_groups[0]
    assert (group["betas"], group["weight_decay"], group["eps"]) == ((0.9, 0.95), 0.01, 1e-8)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(500):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: a no-op that keeps the optimizer-before-scheduler order
        sched.step()
    # the authors' schedule: 1e-4 for epochs 0-299, 1e-5 from epoch 300 (60 % of 500)
    assert lrs[:300] == pytest.approx([1e-4] * 300)
    assert lrs[300:] == pytest.approx([1e-5] * 200)


class InterruptedRunError(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    data = list(images(6))  # 6 images, batch 4: drop_last keeps the data order shuffle-dependent
    train = {"epochs": 3, "batch_size": 4}
    assert tiny(**train).config.decoder.drop_path_rate > 0  # global RNG in use: its state must be restored

    full = tiny(**train)
    fit(full, data, checkpoint_dir=tmp_path / "full", progress=False)

    def stop_after_first(record: dict[str, Any]) -> None:
        if record["epoch"] == 1:
            raise InterruptedRunError

    part = tiny(**train)
    with pytest.raises(InterruptedRunError):
        fit(part, data, checkpoint_dir=tmp_path / "part", on_epoch_end=stop_after_first, progress=False)
    torch.manual_seed(123)
    torch.rand(10)  # a different process state before resuming

    resumed = tiny(seed=7, **train)  # other initial weights: everything must come from the checkpoint
    result = fit(
        resumed, data, checkpoint_dir=tmp_path / "part", resume_from=tmp_path / "part" / "last.pt", progress=False
    )
    assert result.epochs_run == 2
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert [h["lr"] for h in result.history] == pytest.approx([1e-4, 1e-4, 1e-5])  # step at round(0.6 * 3) = 2
    expected = full.state_dict()
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, expected[k]), k


@pytest.mark.parametrize("how", ["nan-input", "huge-lr"])
def test_non_finite_loss_raises_naming_epoch_and_step(how: str, tmp_path: Path) -> None:
    data = images(4)
    if how == "nan-input":
        model = tiny(epochs=1, batch_size=4)
        data[2, 0, 5, 5] = float("nan")
        epoch, step = 0, 0
    else:
        model = tiny(epochs=3, batch_size=2, lr=1e30, lr_final=1e30)
        epoch, step = None, None
    with pytest.raises(NonFiniteLossError, match=r"epoch index \d+, step index \d+") as info:
        fit(model, list(data), checkpoint_dir=tmp_path, progress=False)
    if epoch is not None:
        assert (info.value.epoch, info.value.step) == (epoch, step)
    else:
        assert info.value.epoch * 2 + info.value.step >= 1  # the first step is finite; AdamW's step then explodes
    assert set(info.value.parts) == {"local_estimation", "global_correspondence", "global_estimation"}


def test_empty_dataset_and_small_dataset() -> None:
    model = tiny(epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="empty"):
        fit(model, [], progress=False)
    result = fit(model, DictImages(images(3)), progress=False)  # fewer images than a batch: no drop_last
    assert result.history[0]["loss"] > 0


def test_config_defaults_follow_the_paper() -> None:
    cfg = GLCFConfig().train
    assert (cfg.lr, cfg.lr_final, cfg.lr_step_fraction, cfg.batch_size, cfg.betas) == (1e-4, 1e-5, 0.6, 8, (0.9, 0.95))


def test_cached_images_are_decoded_once_with_loader_workers(tmp_path: Path) -> None:
    """With ``num_workers > 0`` the cache is filled before the first epoch, so later epochs read no file."""
    make_loco(tmp_path)
    data = read_category(tmp_path, "box", "loco")
    model = tiny(epochs=2, batch_size=2, num_workers=1, cache_features=False)
    train_set = ImageDataset(data.train, model.config.image_size, model.mean, model.std, cache=True)

    def delete_the_files(record: dict[str, Any]) -> None:
        if record["epoch"] == 1:
            for sample in data.train:
                sample.path.unlink()

    result = fit(model, train_set, progress=False, on_epoch_end=delete_the_files)
    assert result.final_epoch == 2
    assert len(train_set._cache) == len(data.train)


def test_cached_encoder_taps_train_as_the_images_do() -> None:
    """The taps computed once give the same losses and weights as running the encoder at every step."""
    data = DictImages(images(6))
    runs = []
    for cache_features in (True, False):
        model = tiny(epochs=3, batch_size=2, cache_features=cache_features)
        result = fit(model, data, progress=False)
        runs.append(([h["loss"] for h in result.history], trainable(model), model.memory.layout_bank.clone()))
    (cached_losses, cached_weights, cached_bank), (losses, weights, bank) = runs
    assert cached_losses == pytest.approx(losses, rel=1e-5)
    for name, value in weights.items():
        torch.testing.assert_close(cached_weights[name], value, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(cached_bank, bank)
