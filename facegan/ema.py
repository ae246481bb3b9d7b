"""An exponential moving average of the generator's weights, the generator facegan samples, evaluates and exports."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .config import TrainConfig
from .distributed import unwrap


class EMA:
    """An exponential moving average of a generator's weights.

    BatchNorm's running statistics belong to the weights they were measured with, so they are not averaged:
    ``calibrate`` re-measures them for the averaged weights (a cumulative average over a few batches of latents)
    before the average generator is used in eval mode.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: float = TrainConfig.ema_warmup):
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        self._mine = [p for p in self.model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # a warm-up, (1 + step) / (warmup + step), so short runs are not dominated by the random initial weights:
        # until the decay reaches its cap, the average spans about the last 1 / (warmup - 1) of the steps
        decay = min(self.decay, (1 + step) / (self.warmup + step))
        theirs = [p.detach() for p in unwrap(model).parameters()]
        torch._foreach_lerp_(self._mine, theirs, 1 - decay)

    @torch.no_grad()
    def calibrate(self, latents: list[torch.Tensor]) -> None:
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
        self.model.train()
        for z in latents:
            self.model(z)
        self.model.eval()
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
