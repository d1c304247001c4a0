"""The single preprocessing path and the torch dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_trees import make_loco, write_png

from glcf.data import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, preprocess, read_category, resize_rgb


def test_constant_image_normalised_exactly(tmp_path):
    color = (100, 150, 200)
    path = write_png(tmp_path / "c.png", np.full((30, 50, 3), color, np.uint8))
    x = preprocess(path, 16)
    assert x.shape == (3, 16, 16)
    assert x.dtype == torch.float32
    expected = [(c / 255 - m) / s for c, m, s in zip(color, IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    for ch in range(3):
        assert torch.allclose(x[ch], torch.full((16, 16), expected[ch]), atol=1e-6)


def test_resize_is_deterministic_and_antialiased():
    # a 1-pixel checkerboard shrunk 4x must average to mid-gray (an aliasing filter would keep 0/255)
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    out = resize_rgb(np.dstack([board] * 3), 16)
    assert out.shape == (16, 16, 3)
    assert out.dtype == np.uint8
    assert np.all(np.abs(out[2:-2, 2:-2].astype(int) - 128) <= 2)
    assert np.array_equal(out, resize_rgb(np.dstack([board] * 3), 16))


def test_dataset_items_match_preprocess_and_cache(tmp_path):
    make_loco(tmp_path)
    data = read_category(tmp_path, "box", "loco")
    ds = ImageDataset(data.test, 32, cache=True)
    assert len(ds) == len(data.test)
    item = ds[3]
    assert set(item) == {"image", "label", "index"}
    assert item["index"] == 3
    assert item["label"] == data.test[3].label
    assert torch.equal(item["image"], preprocess(data.test[3], 32))
    ds.preload()
    data.test[0].path.unlink()  # the cache must serve it from now on
    assert torch.equal(ds[0]["image"], ds[0]["image"])
    with pytest.raises(IndexError):
        ds[len(ds)]
    nocache = ImageDataset(data.test, 32)
    with pytest.raises(Exception, match=r"000.png"):
        nocache[0]


def test_bad_statistics_rejected():
    with pytest.raises(ValueError, match="std > 0"):
        preprocess(np.zeros((4, 4, 3), np.uint8), 4, std=(0.2, 0.0, 0.2))
