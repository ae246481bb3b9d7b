"""What a run draws its pictures with: the fixed latent vectors of the sample grids, and the generator to draw them
with, which is the moving average of G's weights (its BatchNorm statistics re-measured) when there is one."""
from __future__ import annotations

import torch
from torch import nn

from .distributed import unwrap
from .ema import EMA
from .models import sample_latent
from .precision import autocast


class Sampler:
    def __init__(self, config, device: torch.device):
        self.device, self.precision = device, config.precision
        # drawn on the CPU from their own seeds, so every device shows the same faces for the same seed
        self.fixed_z = sample_latent(config.n_samples, config.z_size, config.latent,
                                     generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
        calibration = torch.Generator().manual_seed(config.seed + 3)
        self.calibration_z = [sample_latent(256, config.z_size, config.latent, generator=calibration).to(device)
                              for _ in range(4)]

    def model(self, G: nn.Module, ema: EMA | None) -> nn.Module:
        """The generator to draw with: ``ema``'s, calibrated, when there is one, else ``G`` itself."""
        return unwrap(G) if ema is None else self.calibrated(ema)

    def calibrated(self, ema: EMA) -> nn.Module:
        """``ema``'s generator with its BatchNorm statistics re-measured on the fixed calibration latents."""
        with autocast(self.device, self.precision):
            ema.calibrate(self.calibration_z)
        return ema.model

    @torch.no_grad()
    def draw(self, G: nn.Module, z: torch.Tensor | None = None) -> torch.Tensor:
        """``G``'s images of ``z`` (default: the fixed latents) in eval mode, float on the CPU in [-1, 1]."""
        was_training = G.training
        G.eval()
        with autocast(self.device, self.precision):
            images = G(self.fixed_z if z is None else z.to(self.device))
        G.train(was_training)
        return images.float().cpu()
