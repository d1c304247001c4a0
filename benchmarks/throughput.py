"""GLCF throughput benchmark: inference and training images/s, peak memory, FLOPs and utilisation.

For each preset (224 px, random encoder weights: throughput does not depend on them) it measures

* inference images/s at batch 1 and 8 (eval mode, no grad),
* training images/s at batch 8 (forward + GLCFLoss + backward + AdamW step over the trainable
  parameters),
* peak memory: CUDA max allocated on a GPU; on the CPU the growth of the process peak RSS
  (``getrusage`` max RSS) over its value before the preset was built,
* GFLOPs per image counted with ``torch.utils.flop_counter.FlopCounterMode`` (forward, and the
  training step forward + backward), and the achieved GFLOP/s as a fraction of the machine's
  measured matmul peak (a large fp32 matmul; bf16 on CUDA, where bf16 autocast is used).

Usage::

    python benchmarks/throughput.py --device cpu --presets default paper --iters 5 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from glcf.config import preset
from glcf.loss import GLCFLoss
from glcf.model import GLCFModel, build_glcf

logger = logging.getLogger("benchmarks.throughput")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(fn: Callable[[], None], device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_peak_gflops(device: torch.device, iters: int) -> tuple[float, str]:
    """Measured GFLOP/s of a large square matmul (fp32 on CPU, bf16 on CUDA)."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: torch.mm(a, b), device, warmup=2, iters=max(iters, 3))
    return 2 * n**3 / seconds / 1e9, f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul"


def count_flops(fn: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def bench_preset(name: str, device: torch.device, warmup: int, iters: int) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = max_rss_mib()
    cfg = preset(name, encoder={"weights": "none"})
    model: GLCFModel = build_glcf(cfg).to(device)
    loss_fn = GLCFLoss(cfg.loss)
    size = cfg.image_size
    result: dict[str, Any] = {"preset": name, "encoder": cfg.encoder.name, "image_size": size}
    result["trainable_params"] = sum(p.numel() for p in model.trainable_parameters())

    def infer(batch: int) -> Callable[[], None]:
        x = torch.randn(batch, 3, size, size, device=device)

        def run() -> None:
            with torch.no_grad(), autocast(device):
                model(x)

        return run

    model.eval()
    for batch in (1, 8):
        run = infer(batch)
        seconds = timed(run, device, warmup, iters)
        result[f"infer_b{batch}_img_s"] = batch / seconds
    result["forward_gflops_per_img"] = count_flops(infer(1)) / 1e9
    if device.type == "cuda":
        result["infer_peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        result["infer_peak_rss_growth_mib"] = max_rss_mib() - rss0

    model.train()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)
    x8 = torch.randn(8, 3, size, size, device=device)

    def fwd_bwd() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            feats = model(x8)
        loss, _ = loss_fn(feats)
        loss.backward()

    def step() -> None:
        fwd_bwd()
        opt.step()

    seconds = timed(step, device, warmup, iters)
    result["train_b8_img_s"] = 8 / seconds
    result["train_gflops_per_img"] = count_flops(fwd_bwd) / 8 / 1e9  # AdamW's elementwise ops not counted
    if device.type == "cuda":
        result["train_peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["train_peak_rss_growth_mib"] = max_rss_mib() - rss0
    result["infer_b8_gflop_s"] = result["forward_gflops_per_img"] * result["infer_b8_img_s"]
    result["train_b8_gflop_s"] = result["train_gflops_per_img"] * result["train_b8_img_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--presets", nargs="+", default=["default", "paper"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = torch.device("cpu" if name == "auto" else name)
    torch.manual_seed(0)
    peak, peak_what = matmul_peak_gflops(device, args.iters)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "memory": "CUDA max allocated" if device.type == "cuda" else "growth of process peak RSS (getrusage)",
        "matmul_peak_gflop_s": peak,
        "matmul_peak_of": peak_what,
        "torch": torch.__version__,
        "results": [],
    }
    for p in args.presets:
        r = bench_preset(p, device, args.warmup, args.iters)
        r["infer_b8_fraction_of_peak"] = r["infer_b8_gflop_s"] / peak
        r["train_b8_fraction_of_peak"] = r["train_b8_gflop_s"] / peak
        report["results"].append(r)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"device: {report['device']}  precision: {report['precision']}  torch {report['torch']}")
    print(f"matmul peak: {peak:.1f} GFLOP/s ({peak_what}); memory = {report['memory']}")
    mem = "mem MiB infer/train"
    print(
        f"{'preset':<8} {'encoder':<30} {'inf b1':>8} {'inf b8':>8} {'train b8':>9} {'fwd GF':>7} {'trn GF':>7}"
        f" {'inf %pk':>7} {'trn %pk':>7} {mem:>20}"
    )
    for r in report["results"]:
        m_inf = r.get("infer_peak_mem_mib", r.get("infer_peak_rss_growth_mib"))
        m_trn = r.get("train_peak_mem_mib", r.get("train_peak_rss_growth_mib"))
        print(
            f"{r['preset']:<8} {r['encoder']:<30} {r['infer_b1_img_s']:>8.2f} {r['infer_b8_img_s']:>8.2f}"
            f" {r['train_b8_img_s']:>9.2f} {r['forward_gflops_per_img']:>7.2f} {r['train_gflops_per_img']:>7.2f}"
            f" {100 * r['infer_b8_fraction_of_peak']:>6.1f}% {100 * r['train_b8_fraction_of_peak']:>6.1f}%"
            f" {m_inf:>9.0f}/{m_trn:<10.0f}"
        )
    print("images/s; GF = GFLOPs per image (FlopCounterMode); %pk = achieved GFLOP/s / matmul peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
