"""FID and KID during training: every ``eval_every`` epochs, the sampling generator against a fixed subset of the
training images, a row in metrics.csv, and best.pt whenever FID improves."""
from __future__ import annotations

import hashlib

import torch


class Evaluator:
    """Scores a generator against ``eval_n`` training images chosen once from the seed (their Inception
    statistics are cached under a key of their pixels), in the arithmetic the run trains in."""

    def __init__(self, images: torch.Tensor, config, device: torch.device, progress: bool = True):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
        self.real = images[pick[:config.eval_n].sort().values].cpu()
        self.key = hashlib.sha256(self.real.numpy().tobytes()).hexdigest()
        self.config, self.device, self.progress = config, device, progress

    def due(self, epoch: int) -> bool:
        """Whether the epoch just finished (1-based) is one to score."""
        return bool(self.config.eval_every) and epoch % self.config.eval_every == 0

    def after_epoch(self, generator, state, files, checkpoint) -> None:
        """At the epochs due: score ``generator()``, add a row to metrics.csv and, when FID improves on
        ``state.best_fid``, save the checkpoint (``checkpoint()`` makes it) and copy it to best.pt."""
        if not self.due(state.epoch):
            return
        scores = self.score(generator())
        files.add_metrics(state.epoch, state.step, scores)
        if scores.fid < state.best_fid:
            state.best_fid = scores.fid
            files.save_checkpoint(checkpoint())
            files.keep_best()

    def score(self, G: torch.nn.Module):
        from .metrics import evaluate
        config = self.config
        return evaluate(G, self.real, key=self.key, z_size=config.z_size, latent=config.latent, seed=config.seed,
                        device=self.device, precision=config.precision, progress=self.progress)
