"""Timing helpers shared by the benchmarks: a timed call, the machine's matmul peak, a FLOP count."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "matmul_peak_gflops", "sync", "timed"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """(median, best) seconds per call after ``warmup`` calls."""
    return summary(samples(fn, device, warmup, iters))


def samples(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Seconds of each of ``iters`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return ordered[len(ordered) // 2], ordered[0]


def matmul_peak_gflops(device: torch.device, iters: int) -> tuple[float, str]:
    """Best measured GFLOP/s of a large square matmul (fp32 on CPU, bf16 on CUDA)."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    _, best = timed(lambda: torch.mm(a, b), device, warmup=2, iters=max(2 * iters, 10))
    return 2 * n**3 / best / 1e9, f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul"


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()
