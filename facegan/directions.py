"""The main directions of variation of a trained generator, found GANSpace-style, and faces moved along them.

GANSpace (Härkönen et al., 2020) samples many latent vectors, takes the principal components of the generator's
first layer's activations, and regresses the latents onto each face's coordinates along those components: the
regression's columns are directions in the latent space that move the first layer along its directions of largest
variance. Moving a face's latent along one of the top directions changes it in one broad way (pose, hair colour,
lighting, background, smile...); which way, nothing guarantees: a direction is found from the data, not named.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .models import sample_latent


@dataclass
class Directions:
    """``vectors``: (k, z_size) orthonormal latent directions, the first moving the first layer most; ``spread``:
    the standard deviation of the sampled latents along each (a natural unit for a step along it)."""
    vectors: torch.Tensor
    spread: torch.Tensor

    def move(self, z: torch.Tensor, amounts: torch.Tensor) -> torch.Tensor:
        """``z`` (n, z_size) moved by ``amounts`` spreads along the directions: (k,) for all alike, or (n, k)."""
        return z + (amounts.to(z) * self.spread.to(z)) @ self.vectors.to(z)


def first_layer(G: nn.Module) -> nn.Module:
    """The generator's first layer with weights (its fc from z in facegan's and the notebook's networks)."""
    for module in G.modules():
        if isinstance(module, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d)):
            return module
    raise ValueError("the generator has no Linear or convolution layer to take the activations of")


@torch.no_grad()
def find_directions(G: nn.Module, z_size: int, k: int = 5, n: int = 4096, latent: str = "uniform",
                    seed: int = 0) -> Directions:
    """The top ``k`` directions of ``G`` from ``n`` latents drawn with ``seed``."""
    z = sample_latent(n, z_size, latent, generator=torch.Generator().manual_seed(seed))
    seen = []
    hook = first_layer(G).register_forward_hook(lambda module, inputs, output: seen.append(output.float().cpu()))
    try:
        for chunk in z.split(512):
            draw(G, chunk)
    finally:
        hook.remove()
    activations = torch.cat(seen).flatten(1).double()
    centred = activations - activations.mean(0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)  # rows: principal axes, largest first
    coordinates = centred @ components[:k].T  # each latent's place along the top k axes
    # the latent directions that move the activations along those axes: least squares z ~ coordinates @ U
    regression = torch.linalg.lstsq(coordinates, (z - z.mean(0)).double()).solution  # (k, z_size)
    vectors, _ = torch.linalg.qr(regression.T)  # orthonormal, each as close to its axis as the earlier allow
    vectors = vectors.T * torch.sign((vectors.T * regression).sum(1, keepdim=True))  # keep the axes' sense
    # measured on other latents: along the axes picked from these, these latents spread more than latents do
    fresh = sample_latent(n, z_size, latent, generator=torch.Generator().manual_seed(seed + 1)).double()
    spread = (fresh @ vectors.T).std(0)
    return Directions(vectors.float(), spread.float())


@torch.no_grad()
def direction_grid(G: nn.Module, directions: Directions, z: torch.Tensor, steps: int = 7,
                   reach: float = 3.0) -> torch.Tensor:
    """Images of one latent ``z`` moved along each direction from -``reach`` to +``reach`` spreads in ``steps``
    steps: (directions × steps, 3, H, W) in [-1, 1], a row per direction."""
    k = len(directions.vectors)
    amounts = torch.zeros(k, steps, k)  # [direction, step] -> how far along each direction
    amounts[torch.arange(k), :, torch.arange(k)] = torch.linspace(-reach, reach, steps)
    moved = directions.move(z.reshape(1, -1).cpu().expand(k * steps, -1), amounts.reshape(k * steps, k))
    return draw(G, moved)


@torch.no_grad()
def draw(G: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """``G``'s images of ``z`` in eval mode, float on the CPU in [-1, 1]."""
    was_training = G.training
    G.eval()
    try:
        return G(z.to(next(G.parameters()).device)).float().cpu()
    finally:
        G.train(was_training)


@torch.no_grad()
def strength(G: nn.Module, directions: Directions, z_size: int, n: int = 256, reach: float = 2.0,
             latent: str = "uniform", seed: int = 0) -> tuple[torch.Tensor, float]:
    """How much each direction changes the faces: the mean absolute pixel difference between ``n`` faces moved
    ``reach`` spreads one way and the other along it, and the same for random directions of the same length (the
    mean over 16 of them). Returns (per direction, random)."""
    g = torch.Generator().manual_seed(seed + 2)
    z = sample_latent(n, z_size, latent, generator=g)

    def change(vector: torch.Tensor) -> float:
        return float((draw(G, z + vector) - draw(G, z - vector)).abs().mean())
    length = reach * directions.spread
    found = torch.tensor([change(length[i] * v) for i, v in enumerate(directions.vectors)])
    randoms = torch.nn.functional.normalize(torch.randn(16, z_size, generator=g), dim=1)
    random = sum(change(length.mean() * r) for r in randoms) / len(randoms)
    return found, random
