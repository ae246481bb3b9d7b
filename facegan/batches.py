"""Batches for training: the Udacity-style DataLoader of the notebook and the fast path sliced from memory.

``get_dataloader`` is the Udacity helper (a shuffling DataLoader of float images in [0, 1]); ``TensorBatches`` is
what facegan trains on: shuffled batches sliced straight from the decoded uint8 tensor on the training device.
"""
from __future__ import annotations

import torch

from .data import load_images
from .errors import DataError


def scale(x: torch.Tensor, feature_range: tuple[float, float] = (-1, 1)) -> torch.Tensor:
    """The Udacity ``scale``: images in [0, 1] to ``feature_range`` (default [-1, 1], the range of tanh)."""
    low, high = feature_range
    return x * (high - low) + low


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return images.float().div_(255)


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of the generator's tanh."""
    return images.float().mul_(2 / 255).sub_(1)


class FaceDataset(torch.utils.data.Dataset):
    """(image in [0, 1], label 0) pairs over a uint8 image tensor, for the Udacity-style DataLoader."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return to_unit(self.images[i]), 0


def get_dataloader(batch_size: int, image_size: int, data_dir: str = "processed_celeba_small/", *,
                   num_workers: int = 0, shuffle: bool = True, **load_kwargs) -> torch.utils.data.DataLoader:
    """The Udacity helper: a shuffling DataLoader of (images, labels), images float in [0, 1], shape
    (batch, 3, image_size, image_size). ``data_dir`` takes anything ``load_images`` does."""
    images = load_images(data_dir, image_size, **load_kwargs)
    return torch.utils.data.DataLoader(FaceDataset(images), batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers)


class TensorBatches:
    """The training fast path: shuffled batches sliced from a uint8 tensor kept on the training device.

    Each epoch's order comes from ``seed`` and the epoch number alone, so a resumed run replays the same order;
    ``start`` skips the batches an interrupted epoch had already used. The last, short batch is dropped (a batch
    of one breaks BatchNorm), and batches are returned as float in [-1, 1], or in [0, 1] with ``unit_range`` (as
    a DataLoader gives them, for a training step that applies its own ``scale``). With ``mirror`` each image is
    flipped left to right at even odds, drawn afresh each epoch from ``seed`` and the epoch alone, like the order.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, *, seed: int = 0,
                 device: torch.device | str = "cpu", channels_last: bool = False, shard: tuple[int, int] = (0, 1),
                 unit_range: bool = False, mirror: bool = False):
        if len(images) < batch_size:
            raise DataError(f"only {len(images)} images but the batch size is {batch_size}: "
                            "lower --batch-size or add images")
        self.images = images.to(device)
        self.batch_size, self.seed, self.device = batch_size, seed, torch.device(device)
        self.channels_last = channels_last
        self.to_float = to_unit if unit_range else to_signed
        self.rank, self.world = shard
        self.mirror = mirror

    def __len__(self):
        return len(self.images) // (self.batch_size * self.world)

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.images), generator=g)

    def flips(self, epoch: int) -> torch.Tensor:
        """Which images ``epoch`` shows mirrored (a bool per image; none without ``mirror``)."""
        if not self.mirror:
            return torch.zeros(len(self.images), dtype=torch.bool)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 500_000_000)
        return torch.rand(len(self.images), generator=g) < 0.5

    def epoch(self, epoch: int, start: int = 0):
        order = self.order(epoch).to(self.device)
        flips = self.flips(epoch).to(self.device)
        step = self.batch_size * self.world
        for b in range(start, len(self)):
            index = order[b * step + self.rank * self.batch_size:][:self.batch_size]
            batch = self.to_float(self.images.index_select(0, index))
            if self.mirror:
                batch = torch.where(flips[index][:, None, None, None], batch.flip(-1), batch)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch
