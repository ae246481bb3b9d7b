"""Where a run is (``RunState``, saved and restored whole by checkpoints) and what it leaves (``RunResult``).

Everything else a checkpoint holds (the networks, their optimisers, the moving average) is the run's material;
``RunState`` is its position: the epoch and the batch inside it, the step count, how many images and seconds it
has taken, the best FID so far, the generator's last loss and the noise generator that draws every latent. A
resumed run that restores it goes on bit for bit where the first one stopped (on the CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass
class RunState:
    noise: torch.Generator  # draws the training latents (and DiffAugment's choices): its state is the run's
    epoch: int = 0  # finished epochs
    batch: int = 0  # batches done inside the current epoch
    step: int = 0  # updates done in all
    images_seen: int = 0  # over every process
    elapsed: float = 0.0  # seconds of training, resumed parts included
    best_fid: float = math.inf
    last_g_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # reported on D-only steps

    @classmethod
    def start(cls, seed: int, device: torch.device, rank: int = 0) -> "RunState":
        """The state of a fresh run: each process draws its own latents, all from the seed."""
        noise = torch.Generator(device=device).manual_seed(noise_seed(seed, rank))
        return cls(noise=noise, last_g_loss=torch.zeros((), device=device))

    def advance(self, images: int) -> None:
        """One update done on ``images`` images (all processes together)."""
        self.batch, self.step, self.images_seen = self.batch + 1, self.step + 1, self.images_seen + images

    def to_dict(self, world_size: int) -> dict:
        """The checkpoint's fields for the position (their names are the checkpoint format's)."""
        return {"noise_rng": self.noise.get_state(), "best_fid": self.best_fid,
                "last_g_loss": self.last_g_loss.item(), "epoch": self.epoch, "batch": self.batch,
                "step": self.step, "world_size": world_size, "images_seen": self.images_seen,
                "elapsed_s": self.elapsed}

    def load(self, saved: dict, seed: int, rank: int, world_size: int) -> None:
        """Take the position of a checkpoint. With another number of processes each rank gets a fresh noise
        stream from the seed and the step (a stream cannot be split), and the position inside the epoch is
        counted again in batches of the new global size."""
        if world_size > 1 or saved.get("world_size", 1) != world_size:
            self.noise.manual_seed(noise_seed(seed, rank) + saved["step"])
        else:
            self.noise.set_state(saved["noise_rng"].to(self.noise.get_state().device))
        self.best_fid = saved.get("best_fid", math.inf)
        self.last_g_loss = torch.tensor(float(saved.get("last_g_loss", 0.0)), device=self.last_g_loss.device)
        self.epoch, self.step = saved["epoch"], saved["step"]
        self.batch = saved["batch"] * saved.get("world_size", 1) // world_size
        self.images_seen, self.elapsed = saved["images_seen"], saved["elapsed_s"]


def noise_seed(seed: int, rank: int) -> int:
    return seed + 2 + 1000 * rank


@dataclass
class RunResult:
    """What a run leaves in memory: per-step (d_loss, g_loss), one sample batch per finished epoch (CPU,
    [-1, 1]), the trained networks, and why it stopped (``signal`` names the signal, e.g. "SIGINT", when one did)."""
    losses: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    D: nn.Module | None = None
    G: nn.Module | None = None
    out: Path | None = None
    stopped: str = "finished"
    images_per_second: float = 0.0
    G_ema: nn.Module | None = None
    threads: str = ""
    signal: str | None = None
