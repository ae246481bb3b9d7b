"""Several processes, one run: torchrun + DistributedDataParallel.

``torchrun --nproc_per_node=N -m facegan train ...`` starts N copies; each calls ``setup`` (NCCL on CUDA, gloo on
the CPU), trains on its own shard of every epoch, and averages gradients through DDP. Only rank 0 writes files.
``--batch-size`` is per process: the global batch is N times larger, and the learning rate is used as given.
"""
from __future__ import annotations

import datetime
import gc
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def requested() -> bool:
    """Started by torchrun (or another launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> World:
    """Join the process group that the launcher describes in the environment (a no-op for a single process)."""
    if not requested():
        return World()
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))
    return current()


def current() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown() -> None:
    """Leave the process group, and end it for good. Each DDP wrapper's reducer holds the group's C++ object, so
    a wrapper still alive here makes destroy_process_group only forget the group, which then dies in the
    interpreter's exit, where gloo's unjoined threads abort the process ("terminate called without an active
    exception") after all the work is done. A finished Trainer is freed by reference counting alone; the collection
    here is for wrappers caught in reference cycles that user code (a notebook's closure, say) may build."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    if current().distributed:
        dist.barrier()


def mean(tensor: torch.Tensor) -> torch.Tensor:
    """The average of ``tensor`` over all processes (itself when alone)."""
    world = current()
    if not world.distributed:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / world.size


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every process as soon as one process says True: used to stop all ranks at the same step."""
    if not current().distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


@torch.no_grad()
def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics, which each rank measures on its own shard)."""
    if not current().distributed:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            buffer.copy_(mean(buffer))


@torch.no_grad()
def replicas_identical(module: torch.nn.Module) -> bool:
    """Whether every process holds exactly the same parameters (a checksum compared across ranks)."""
    if not current().distributed:
        return True
    checksum = torch.stack([p.double().sum() for p in module.parameters()]).sum().reshape(1)
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(low == high)


def wrap(model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
    """Under torchrun, ``model`` in DistributedDataParallel (else as it is). Each rank keeps its own BatchNorm
    statistics while training (broadcasting them from rank 0 at every forward would also break the two forward
    passes of the D step); ``sync_bn`` normalises over the global batch instead (CUDA only)."""
    if not current().distributed:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA (NCCL); drop it for CPU runs")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel
    # newer torch names the switch forward_sync_buffers (buffers still start equal: same seed, same init)
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
               else {"broadcast_buffers": False})
    return ddp(model, device_ids=ids, **no_sync)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner
