"""Is the generator copying its training set? Each generated face beside its closest training images.

Distances are measured in the InceptionV3 feature space FID uses (faces that look alike are close there, whatever
their exact pixels) when the metrics extra is installed, and in pixel space otherwise. A generator that memorised
its data draws faces much closer to some training image than training images are to one another, so the summary
compares the two: generated-to-nearest-training against training-to-nearest-other-training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SPACES = ("auto", "inception", "pixel")


@dataclass
class Neighbours:
    index: torch.Tensor      # (n, k) training-image indices, nearest first
    distance: torch.Tensor   # (n, k)
    space: str
    baseline: float          # median distance from a training image to its nearest other training image

    def summary(self) -> str:
        nearest = float(self.distance[:, 0].median())
        return (f"{self.space} space: generated faces lie {nearest:.3g} from their nearest training image (median), "
                f"training images {self.baseline:.3g} from their nearest other one: ratio {nearest / self.baseline:.2f} "
                "(well below 1 would mean copying)")


def resolve_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}: use one of {SPACES}")
    if space != "auto":
        return space
    from .errors import MetricsUnavailable
    from .metrics import weights_path
    try:
        weights_path()
        return "inception"
    except MetricsUnavailable:
        return "pixel"


def embed(images: torch.Tensor, space: str, *, device="cpu", cache_key: str | None = None,
          progress: bool = False) -> torch.Tensor:
    """float32 vectors of uint8 images (N, 3, S, S): Inception pool features (in bf16 where the CPU has it, as
    evaluation does; with ``cache_key`` they come from, and go to, the same on-disk cache as FID's reference
    statistics) or the pixels in [0, 1]."""
    if space == "pixel":
        return images.flatten(1).float().div_(255)
    from .metrics import features, reference_statistics
    if cache_key is None:
        vectors = features(images, device=device, precision="auto", progress=progress)
    else:
        vectors = reference_statistics(images, cache_key, device=device, precision="auto",
                                       progress=progress).features
    return torch.from_numpy(vectors.astype(np.float32))


def nearest_neighbours(generated: torch.Tensor, training: torch.Tensor, *, k: int = 5, space: str = "auto",
                       device="cpu", cache_key: str | None = None, progress: bool = False) -> Neighbours:
    """The ``k`` training images (uint8, N×3×S×S) nearest to each generated one (uint8, n×3×S×S)."""
    if len(training) < 2:
        raise ValueError("need at least 2 training images to compare with")
    k = min(k, len(training) - 1)
    space = resolve_space(space)
    train_vectors = embed(training, space, device=device, cache_key=cache_key, progress=progress)
    gen_vectors = embed(generated, space, device=device, progress=progress)
    distance, index = _knn(gen_vectors, train_vectors, k)
    # the baseline: up to 500 training images against all the others (each one's own distance of 0 excluded)
    probe = torch.randperm(len(training), generator=torch.Generator().manual_seed(0))[:500]
    own, _ = _knn(train_vectors[probe], train_vectors, 2)
    return Neighbours(index, distance, space, float(own[:, 1].median()))


def _knn(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest keys of each query. cdist's fast form (|a|^2 + |b|^2 - 2a.b through a matmul) only shortlists:
    its rounding residue differs between CPUs' kernels (an exact copy read 5e-7 on one, 0 on another), so the
    shortlist's distances are measured again as |a - b| directly, and a copy reads 0 on every CPU."""
    distances, indices = [], []
    shortlist = min(len(keys), k + 16)  # room for near-ties the rounding may have swapped
    for chunk in queries.double().split(256):
        _, candidates = torch.cdist(chunk, keys.double()).topk(shortlist, dim=1, largest=False)
        exact = (chunk[:, None, :] - keys[candidates].double()).norm(dim=-1)
        values, order = exact.topk(k, dim=1, largest=False)
        distances.append(values.float())
        indices.append(candidates.gather(1, order))
    return torch.cat(distances), torch.cat(indices)


def neighbour_grid(generated: torch.Tensor, training: torch.Tensor, neighbours: Neighbours) -> torch.Tensor:
    """Images in [-1, 1] laid out a row per generated face: the face, then its neighbours nearest first (for
    ``facegan.images.save_grid`` with nrow = k + 1)."""
    rows = []
    for i, face in enumerate(generated):
        rows += [face[None], training[neighbours.index[i]]]
    return torch.cat(rows).float().mul(2 / 255).sub(1)
