"""Which arithmetic to use where: bf16 only on hardware that has bf16 units.

bf16 autocast halves the memory traffic and, on CPUs with AVX512-BF16 or AMX and on Ampere-or-newer GPUs, roughly
doubles the arithmetic rate. Everywhere else torch emulates it: on a 2-core AVX2 EPYC a bf16 matmul ran at about 1
GFLOP/s against 118-147 in fp32, and a facegan training step about 16x slower than in fp32 (22-24 against 386-402
images/s, bench/levers.py --only default bf16). So ``auto``, the default, asks the hardware instead of assuming it.
"""
from __future__ import annotations

import contextlib
import functools

import torch

PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=None)  # the CPU does not change while we run: read /proc/cpuinfo once
def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no cheap way to know, so stay exact
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def has_native_bf16(device: torch.device | str) -> bool:
    """True where bf16 arithmetic runs on its own units: CPUs with AVX512-BF16/AMX, CUDA GPUs from Ampere on."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return False  # MPS and the rest: autocast is not used there


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The arithmetic to use, for training and for FID's Inception alike: 'auto' is bf16 where the device has bf16
    units (about 2x faster there; FID moved by under 1% in bf16) and fp32 elsewhere; 'bf16' and 'fp32' are kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    if precision != "auto":
        return precision
    return "bf16" if has_native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str):
    """bf16 autocast where it is asked for (or 'auto' and the device has bf16 units); otherwise nothing."""
    if resolve_precision(precision, device) == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
