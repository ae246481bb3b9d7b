"""Where a run trains: the device, and what a device says when it runs out of memory."""
from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an explicit device must exist on this machine."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for, but CUDA is not available here: use --device auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not mps:
        raise ValueError("device 'mps' asked for, but Apple MPS is not available here: use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device '{name}': use auto, cpu, cuda, cuda:N or mps")
    return device


def is_out_of_memory(error: BaseException) -> bool:
    """A failed allocation: CUDA's or MPS's out-of-memory error, or the CPU allocator's."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                                 or "MPS backend out of memory" in text)
