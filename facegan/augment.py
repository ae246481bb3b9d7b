"""Differentiable augmentation of everything the discriminator sees (DiffAugment, Zhao et al. 2020).

With a few thousand faces the discriminator soon memorises the training set and its feedback to the generator turns
into noise. Showing it randomly shifted, cut-out and recoloured versions of both the real and the fake images keeps
it from memorising, while the generator still learns the un-augmented distribution: the augmentations are made of
differentiable tensor operations, so G's gradient flows through them, and since reals and fakes get the same kind
of change D cannot tell them apart by it.

Each transform draws its randomness from the ``generator`` it is given (the run's noise generator), so runs stay
repeatable and resumable.
"""
from __future__ import annotations

import torch

TRANSFORMS = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """'translation,cutout' -> ('translation', 'cutout'); '' -> (). Unknown names raise ValueError."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: use a comma-separated list of {', '.join(TRANSFORMS)}"
                         " or an empty string for none")
    return names


def augment(images: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """``images`` (N×C×H×W, in [-1, 1]) with each transform of ``policy`` applied, with fresh randomness per image."""
    for name in policy:
        images = _TRANSFORM[name](images, generator)
    return images


def _uniform(images: torch.Tensor, generator, *shape) -> torch.Tensor:
    return torch.rand(images.shape[0], *shape, generator=generator, device=images.device, dtype=torch.float32)


def color(images, generator):
    """Brightness shift in [-0.5, 0.5), saturation scale in [0, 2), contrast scale in [0.5, 1.5) (on [0, 1] images;
    doubled here for [-1, 1])."""
    dtype = images.dtype
    images = images + ((_uniform(images, generator, 1, 1, 1) - 0.5) * 2).to(dtype)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(images, generator, 1, 1, 1) * 2).to(dtype) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator, 1, 1, 1) + 0.5).to(dtype) + mean


def translation(images, generator, ratio: float = 0.125):
    """Shift each image by up to ``ratio`` of its size in each direction, filling with zeros (mid-grey)."""
    n, _, h, w = images.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (_uniform(images, generator) * (2 * sy + 1)).long() - sy
    dx = (_uniform(images, generator) * (2 * sx + 1)).long() - sx
    padded = torch.nn.functional.pad(images, (sx, sx, sy, sy))
    rows = (torch.arange(h, device=images.device)[None, :] - dy[:, None] + sy)[:, :, None]  # N×H×1
    cols = (torch.arange(w, device=images.device)[None, :] - dx[:, None] + sx)[:, None, :]  # N×1×W
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # N×H×W×C back to N×C×H×W


def cutout(images, generator, ratio: float = 0.5):
    """Zero (mid-grey) a square of ``ratio`` of the image's side at a random place in each image."""
    _, _, h, w = images.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = (_uniform(images, generator) * (h + 1 - ch % 2)).long() - ch // 2
    left = (_uniform(images, generator) * (w + 1 - cw % 2)).long() - cw // 2
    y = torch.arange(h, device=images.device)[None, :]
    x = torch.arange(w, device=images.device)[None, :]
    inside_rows = (y >= top[:, None]) & (y < top[:, None] + ch)  # N×H
    inside_cols = (x >= left[:, None]) & (x < left[:, None] + cw)  # N×W
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return images * keep[:, None].to(images.dtype)


_TRANSFORM = {"color": color, "translation": translation, "cutout": cutout}
