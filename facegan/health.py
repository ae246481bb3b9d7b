"""Training-health signals in plain words: the two failures GAN threads ask about most, noticed as they happen.

* **The discriminator wins outright.** It calls every fake fake with confidence (its mean probability on fakes,
  D(G(z)), near 0) or its loss sits near 0 for a sustained stretch: the generator then learns little or nothing.
* **Mode collapse.** The samples of the fixed latent vectors stop differing from one another: G draws (nearly) the
  same face whatever z is.

Each is warned about once per run, with what to try.
"""
from __future__ import annotations

import warnings
from collections import deque

import torch

from .batches import scale, to_signed


def diversity(images: torch.Tensor) -> float:
    """How much a batch of images in [-1, 1] differs from one another: the per-pixel standard deviation across the
    batch, averaged over pixels (0 for identical images; about 0.5 for a batch of real faces)."""
    return float(images.detach().float().std(0).mean())


class HealthMonitor:
    """Feed it every step's losses and probabilities (``steps``) and every epoch's fixed-latent samples
    (``samples``); it warns once per failure.

    D wins outright when, over the last ``window`` steps, D(G(z)) averages below ``fake_floor`` or D's loss below
    ``loss_floor``. Collapse is the samples' diversity falling below ``collapse`` times that of the real images and
    below half of the best it has been in this run (so a fresh generator's grey start is not a collapse)."""

    def __init__(self, real_images: torch.Tensor, *, window: int = 200, fake_floor: float = 0.03,
                 loss_floor: float = 0.05, collapse: float = 0.25, warn=warnings.warn):
        self.real_diversity = diversity(real_images)
        self.window, self.fake_floor, self.loss_floor, self.collapse = window, fake_floor, loss_floor, collapse
        self.warn = warn
        self._d_loss, self._d_fake = deque(maxlen=window), deque(maxlen=window)
        self.best_diversity = 0.0
        self.warned: set[str] = set()

    @classmethod
    def for_images(cls, images: torch.Tensor, seed: int) -> "HealthMonitor":
        """A monitor measured on up to 256 of the training images (uint8, or float in [0, 1] as a DataLoader gives
        them; a fixed random choice by ``seed``)."""
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:256]
        chosen = images[pick.to(images.device)].cpu()
        return cls(to_signed(chosen) if chosen.dtype == torch.uint8 else scale(chosen.float()))

    def steps(self, values: torch.Tensor) -> None:
        """``values``: (steps, 4) rows of d_loss, g_loss, D(x), D(G(z)) (the probabilities may be NaN: unknown)."""
        for d_loss, _, _, d_fake in values.tolist():
            self._d_loss.append(d_loss)
            if d_fake == d_fake:
                self._d_fake.append(d_fake)
        if "discriminator" in self.warned or len(self._d_loss) < self.window:
            return
        d_loss = sum(self._d_loss) / len(self._d_loss)
        d_fake = sum(self._d_fake) / len(self._d_fake) if len(self._d_fake) == self.window else None
        if d_loss < self.loss_floor or (d_fake is not None and d_fake < self.fake_floor):
            self.warned.add("discriminator")
            seen = f"D(G(z)) {d_fake:.3f}, " if d_fake is not None else ""
            self.warn(f"the discriminator is winning outright ({seen}D loss {d_loss:.3f} on average over the last "
                      f"{self.window} steps): it rejects every fake with confidence, so the generator learns little. "
                      "Try a smaller discriminator learning rate (--d-lr, e.g. half of --lr), label smoothing "
                      "(--real-label 0.9), a wider generator (--g-conv-dim) or a narrower discriminator "
                      "(--d-conv-dim)", stacklevel=2)

    def samples(self, images: torch.Tensor) -> None:
        """The fixed latent vectors' samples after an epoch, in [-1, 1]."""
        now = diversity(images)
        self.best_diversity = max(self.best_diversity, now)
        if "collapse" in self.warned:
            return
        if now < self.collapse * self.real_diversity and now < 0.5 * self.best_diversity:
            self.warned.add("collapse")
            self.warn(f"the samples are losing their diversity (mode collapse): the fixed latent vectors' images "
                      f"differ by {now:.3f} on average, down from {self.best_diversity:.3f}, where real faces differ "
                      f"by {self.real_diversity:.3f}. G draws nearly the same face for every z. Try a smaller "
                      "learning rate (--lr), label smoothing (--real-label 0.9), or going back to an earlier "
                      "checkpoint (--eval-every keeps best.pt)", stacklevel=2)
