"""Where a run trains: the device, and the batch size that suits it."""
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


def default_batch_size(device: torch.device) -> int:
    """The batch a run uses unless told otherwise.

    On the CPU a step costs about in proportion to its batch, so smaller batches buy more updates per minute, and
    for these small networks the number of updates is what the faces improve with: in 5 minutes on the 2-core
    machine batch 64 reached FID 44 where batch 256 reached 72, though 256 trains 1.5x more images per second
    (bench/quality.py --set batch_size=...). On a GPU a step of these networks at 256 costs little more than at
    64, so the larger batch is the faster one there."""
    return 64 if device.type == "cpu" else 256


def is_out_of_memory(error: BaseException) -> bool:
    """A failed allocation: CUDA's or MPS's out-of-memory error, or the CPU allocator's."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                                 or "MPS backend out of memory" in text)
