"""DDP training (glcf.distributed): two gloo workers reproduce one process on the same data."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from tensor_images import DictImages, random_images, trainable

from glcf.distributed import DistributedSetupError, EpochShardSampler, dist_env
from glcf.engine import fit
from glcf.model import GLCFModel, build_glcf
from glcf.presets import preset

# drop path off: the only random op in training; with it each rank would draw other masks than one process
TRAIN = {"epochs": 3, "batch_size": 4, "lr": 2e-3, "lr_final": 5e-4, "num_workers": 0, "device": "cpu"}


def images(n: int = 10) -> torch.Tensor:
    return random_images(n, seed=3)


def tiny_model() -> GLCFModel:
    torch.manual_seed(0)
    return build_glcf(preset("tiny", decoder={"drop_path_rate": 0.0}, train=TRAIN))


def key_bias_mask(name: str, value: torch.Tensor) -> torch.Tensor:
    """True on the key third of ``qkv.bias`` tensors."""
    mask = torch.zeros_like(value, dtype=torch.bool)
    if name.endswith("qkv.bias"):
        n = value.numel() // 3
        mask[n : 2 * n] = True
    return mask


def test_key_bias_gradient_is_zero_up_to_rounding() -> None:
    from glcf.loss import GLCFLoss

    model = tiny_model()
    total, _ = GLCFLoss(model.config.loss)(model(images(4)))
    total.backward()
    grads = dict(model.named_parameters())
    largest = max(p.grad.abs().max().item() for p in model.trainable_parameters())
    key = max(grads[k].grad[key_bias_mask(k, grads[k])].abs().max().item() for k in grads if k.endswith("qkv.bias"))
    assert key < 1e-6 * largest, (key, largest)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One torchrun-like rank: env:// rendezvous, gloo, fit picks DDP by itself."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from glcf.distributed import DDPStrategy, init_distributed, shutdown_distributed

    init_distributed("cpu", timeout_s=120)
    try:
        model = tiny_model()
        records: list[dict[str, Any]] = []
        result = fit(
            model, DictImages(images()), checkpoint_dir=Path(out) / "ckpt", on_epoch_end=records.append, progress=False
        )
        assert isinstance(model, GLCFModel)
        torch.save(
            {"state": trainable(model), "history": result.history, "records": records, "ddp": DDPStrategy().is_main},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        shutdown_distributed()


def test_two_gloo_workers_match_one_process(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single = tiny_model()
    before = trainable(single)
    one = fit(single, DictImages(images()), progress=False)
    expected = trainable(single)

    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    # The key bias of every attention block has a zero gradient in exact arithmetic (softmax is shift-invariant),
    # so its float-noise gradient (~1e-9) becomes +-lr steps under AdamW (eps 1e-8) in either run: compare the rest.
    for name in [k for k in expected if k.startswith("memory.")]:  # from the frozen encoder: equal everywhere
        assert expected[name].numel() > 0, name
        got = ranks[0]["state"].pop(name)
        assert got.shape == expected[name].shape, name
        torch.testing.assert_close(got, expected.pop(name), rtol=1e-5, atol=1e-6, msg=name)
        ranks[1]["state"].pop(name)
    diffs = {k: (ranks[0]["state"][k] - v)[~key_bias_mask(k, v)].abs().max().item() for k, v in expected.items()}
    moved = max((expected[k] - before[k]).abs().max().item() for k in expected)
    worst = max(diffs.values())
    print(f"max |w_ddp - w_single| = {worst:.3e}; max |w_single - w_init| = {moved:.3e}")
    assert moved > 1e-3  # training really changed the weights
    assert worst < 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    for k, v in ranks[0]["state"].items():  # DDP keeps the replicas identical
        assert torch.equal(v, ranks[1]["state"][k]), k
    # epoch losses averaged over the ranks are the single process's; only rank 0 reports and checkpoints
    assert [h["loss"] for h in ranks[0]["history"]] == pytest.approx([h["loss"] for h in one.history], rel=1e-5)
    assert [h["images_per_second"] > 0 for h in ranks[0]["history"]] == [True] * 3
    assert len(ranks[0]["records"]) == 3
    assert ranks[1]["records"] == []
    assert ranks[0]["ddp"]
    assert not ranks[1]["ddp"]
    assert (tmp_path / "ckpt" / "last.pt").is_file()


class RecordingImages(DictImages):
    """Records the order in which training reads the images (batches of the real single-process fit)."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__(images)
        self.reads: list[int] = []

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.reads.append(i)
        return super().__getitem__(i)


def test_shards_are_the_single_process_batches() -> None:
    data = RecordingImages(images(11))  # 11 images, global batch 4: two full batches per epoch, 3 dropped
    # taps not cached: every epoch reads its images, which shows the order each epoch draws
    fit(tiny_model(), data, preset("tiny", train={**TRAIN, "epochs": 3, "cache_features": False}).train, progress=False)
    training, memory_fill = data.reads[:24], data.reads[24:]
    assert memory_fill == list(range(11))  # after training, the normal memories read every image once, in order
    seen = [sorted(training[i : i + 4]) for i in range(0, len(training), 4)]
    assert len(seen) == 6
    for epoch in range(3):
        shards = []
        for rank in (0, 1):
            sampler = EpochShardSampler(data, 4, 0, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(sampler) == len(shards[-1]) == 4
        merged = [sorted(shards[0][2 * s : 2 * s + 2] + shards[1][2 * s : 2 * s + 2]) for s in range(2)]
        assert merged == seen[2 * epoch : 2 * epoch + 2], epoch
    assert seen[0:2] != seen[2:4]  # a new order every epoch


def test_bad_splits_are_clear_errors() -> None:
    data = DictImages(images(6))
    with pytest.raises(DistributedSetupError, match="multiple of the 4 DDP workers"):
        EpochShardSampler(data, 6, 0, num_replicas=4, rank=0)
    with pytest.raises(DistributedSetupError, match=r"at least train\.batch_size=8"):
        EpochShardSampler(data, 8, 0, num_replicas=2, rank=1)
    assert dist_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).rank == 1
    assert dist_env({}).world_size == 1
    with pytest.raises(DistributedSetupError, match="outside WORLD_SIZE"):
        dist_env({"RANK": "2", "WORLD_SIZE": "2"})
