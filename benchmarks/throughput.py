"""GLCF throughput benchmark: inference and training images/s, peak memory, FLOPs and utilisation.

For each preset (at ``--image-size``, default 224 px; random encoder weights: throughput does not
depend on them) it measures

* inference images/s at batch 1 and 8 (eval mode, no grad),
* training images/s at batch 8 (forward + GLCFLoss + backward + AdamW step over the trainable
  parameters),
* peak memory: CUDA max allocated on a GPU (model included); on the CPU the growth of the
  process peak RSS over the RSS with the model built (Linux ``VmHWM``, reset before each phase
  through ``/proc/self/clear_refs``), i.e. activations, workspace and optimiser state; each
  preset runs in a fresh process so that memory freed by an earlier one does not hide growth,
* GFLOPs per image counted with ``torch.utils.flop_counter.FlopCounterMode`` (forward, and the
  training step forward + backward), and the achieved GFLOP/s as a fraction of the machine's
  measured matmul peak (a large fp32 matmul; bf16 on CUDA, where bf16 autocast is used).

Images/s are the median of ``--iters`` timed runs (``*_best``: the fastest run). The utilisation
uses the fastest runs and the best matmul measured before and after the preset, which keeps it
meaningful on a machine shared with other jobs.

Usage::

    python benchmarks/throughput.py --device cpu --presets default paper --iters 5 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from glcf.model import GLCFModel, build_glcf
from glcf.presets import preset
from glcf.runtime import autocast as runtime_autocast
from glcf.runtime import resolve_amp, resolve_device
from glcf.timing import count_flops, matmul_peak_gflops, timed
from glcf.training.loss import GLCFLoss

logger = logging.getLogger("benchmarks.throughput")


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """The engine's precision policy (``train.amp: auto``): bf16 autocast on CUDA, fp32 elsewhere."""
    return runtime_autocast(device, resolve_amp("auto", device))


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) and return the current RSS in MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        logger.warning("cannot reset the peak RSS; falling back to the process-lifetime peak")
    current = _status_mib("VmRSS")
    return current if current is not None else peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak RSS since the last reset (``VmHWM``), else the process-lifetime peak (``getrusage``)."""
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_preset(
    name: str, device_name: str, warmup: int, iters: int, threads: int, image_size: int = 224
) -> dict[str, Any]:
    """Measure one preset (run in a fresh process so that its peak memory is its own)."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    peak, peak_what = matmul_peak_gflops(device, iters)  # same process, just before the model runs
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = preset(name, image_size=image_size, encoder={"weights": "none"})
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
    rss0 = reset_peak_rss()  # model built: the growth is activations, workspace and (later) optimiser state
    for batch in (1, 8):
        median, best = timed(infer(batch), device, warmup, iters)
        result[f"infer_b{batch}_img_s"] = batch / median
        result[f"infer_b{batch}_img_s_best"] = batch / best
    result["forward_gflops_per_img"] = count_flops(infer(1)) / 1e9
    if device.type == "cuda":
        result["infer_peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    else:
        result["infer_peak_rss_growth_mib"] = peak_rss_mib() - rss0
        rss0 = reset_peak_rss()

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

    median, best = timed(step, device, warmup, iters)
    result["train_b8_img_s"] = 8 / median
    result["train_b8_img_s_best"] = 8 / best
    result["train_gflops_per_img"] = count_flops(fwd_bwd) / 8 / 1e9  # AdamW's elementwise ops not counted
    if device.type == "cuda":
        result["train_peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["train_peak_rss_growth_mib"] = peak_rss_mib() - rss0
    peak = max(peak, matmul_peak_gflops(device, iters)[0])  # again after the model: contention varies
    # utilisation from the best runs (the least disturbed by other processes) against the best matmul
    result["infer_b8_gflop_s"] = result["forward_gflops_per_img"] * result["infer_b8_img_s_best"]
    result["train_b8_gflop_s"] = result["train_gflops_per_img"] * result["train_b8_img_s_best"]
    result["matmul_peak_gflop_s"], result["matmul_peak_of"] = peak, peak_what
    result["infer_b8_fraction_of_peak"] = result["infer_b8_gflop_s"] / peak
    result["train_b8_fraction_of_peak"] = result["train_b8_gflop_s"] / peak
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--presets", nargs="+", default=["default", "paper"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--image-size", type=int, default=224, help="input side for every preset (Swin-T: 224)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    for p in args.presets:  # fail before any timing, naming the preset and the value
        try:
            preset(p, image_size=args.image_size, encoder={"weights": "none"})
        except (KeyError, ValueError) as exc:
            parser.error(f"--presets {p} --image-size {args.image_size}: {exc}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as exc:
        parser.error(f"--device {args.device}: {exc}")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "memory": "CUDA max allocated" if device.type == "cuda" else "peak RSS growth over the built model (VmHWM)",
        "torch": torch.__version__,
        "results": [],
    }
    spawn = multiprocessing.get_context("spawn")
    for p in args.presets:
        with spawn.Pool(1) as pool:  # fresh process per preset: peak memory not inherited
            r = pool.apply(bench_preset, (p, str(device), args.warmup, args.iters, args.threads, args.image_size))
        report["results"].append(r)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"device: {report['device']}  precision: {report['precision']}  torch {report['torch']}")
    peaks = ", ".join(f"{r['preset']} {r['matmul_peak_gflop_s']:.1f}" for r in report["results"])
    print(f"matmul peak GFLOP/s ({report['results'][0]['matmul_peak_of']}, best of runs): {peaks}")
    print(f"memory = {report['memory']}; images/s = median (best) of --iters runs")
    mem = "mem MiB infer/train"
    print(
        f"{'preset':<8} {'encoder':<30} {'inf b1':>14} {'inf b8':>14} {'train b8':>14} {'fwd GF':>7} {'trn GF':>7}"
        f" {'inf %pk':>7} {'trn %pk':>7} {mem:>20}"
    )
    for r in report["results"]:

        def speed(key: str, r: dict[str, Any] = r) -> str:
            return f"{r[key + '_img_s']:.2f} ({r[key + '_img_s_best']:.2f})"

        m_inf = r.get("infer_peak_mem_mib", r.get("infer_peak_rss_growth_mib"))
        m_trn = r.get("train_peak_mem_mib", r.get("train_peak_rss_growth_mib"))
        print(
            f"{r['preset']:<8} {r['encoder']:<30} {speed('infer_b1'):>14} {speed('infer_b8'):>14}"
            f" {speed('train_b8'):>14} {r['forward_gflops_per_img']:>7.2f} {r['train_gflops_per_img']:>7.2f}"
            f" {100 * r['infer_b8_fraction_of_peak']:>6.1f}% {100 * r['train_b8_fraction_of_peak']:>6.1f}%"
            f" {m_inf:>9.0f}/{m_trn:<10.0f}"
        )
    print("images/s; GF = GFLOPs per image (FlopCounterMode); %pk = achieved GFLOP/s / matmul peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
