"""Turning generator output into pictures: grids and single PNGs."""
from __future__ import annotations

import io
import math
import os

import torch
from torchvision.utils import make_grid

from . import atomic


def quantize(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 3, H, W) -> uint8 (N, 3, H, W), rounded as a saved image would be."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 3, H, W) -> uint8 (N, H, W, 3), the layout image files use."""
    return quantize(images).permute(0, 2, 3, 1)


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """A square-ish grid of [-1, 1] images as uint8 (H, W, 3)."""
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    tiled = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    return to_uint8(tiled[None])[0]


def save_png(array: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a uint8 (H, W, 3) array as PNG, atomically."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array.numpy()).save(buffer, format="PNG")
    atomic.atomic_write(path, lambda f: f.write(buffer.getvalue()))


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    save_png(grid(images, nrow), path)


def save_gif(frames: list[torch.Tensor], path: str | os.PathLike, *, nrow: int | None = None,
             seconds_per_frame: float = 0.5) -> None:
    """An animation of sample grids (one [-1, 1] batch per frame), e.g. the fixed latents across epochs."""
    from PIL import Image
    if not frames:
        raise ValueError("no frames to animate: train for at least one epoch first")
    pictures = [Image.fromarray(grid(f, nrow).numpy()) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=int(seconds_per_frame * 1000), loop=0)
    atomic.atomic_write(path, lambda f: f.write(buffer.getvalue()))
