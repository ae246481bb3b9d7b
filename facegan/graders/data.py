"""Graders of the data steps: get_dataloader, the DataLoader it returns, and scale."""
from __future__ import annotations

import math

import torch

from .common import accepts_second_argument, call_learner, check, passed


def test_dataloader(loader, image_size: int = 32, batch_size: int | None = None):
    """A DataLoader of (images, labels): float images in [0, 1], shape (batch, 3, image_size, image_size),
    shuffled."""
    batch = call_learner("next(iter(loader))", lambda: next(iter(loader)),
                         todo="return a DataLoader from get_dataloader")
    check(isinstance(batch, (tuple, list)) and len(batch) == 2, "(images, labels) batches",
          f"{type(batch).__name__}", "ImageFolder-style datasets yield (image, label) pairs")
    images, labels = batch
    expected_batch = batch_size or loader.batch_size
    check(tuple(images.shape[1:]) == (3, image_size, image_size), f"images of shape (3, {image_size}, "
          f"{image_size})", f"{tuple(images.shape[1:])}", "resize to image_size and keep 3 RGB channels")
    check(images.shape[0] == expected_batch, f"batches of {expected_batch}", f"{images.shape[0]}",
          "pass batch_size to the DataLoader")
    check(images.dtype == torch.float32, "float32 images", f"{images.dtype}", "use transforms.ToTensor()")
    check(images.min() >= 0 and images.max() <= 1, "values in [0, 1] (scale() maps them to [-1, 1] later)",
          f"range {images.min():.3f}..{images.max():.3f}", "don't normalise in the loader: ToTensor gives [0, 1]")
    check(images.std() > 0.01, "varied pixel values", f"std {images.std():.4f}", "are the images blank?")
    check(isinstance(loader.sampler, torch.utils.data.RandomSampler), "shuffle=True",
          type(loader.sampler).__name__, "pass shuffle=True to the DataLoader")
    check(len(labels) == images.shape[0], "one label per image", f"{len(labels)} labels", "return (image, label)")
    passed()


def test_get_dataloader(get_dataloader, data_dir, image_size: int = 32, batch_size: int = 16):
    """``get_dataloader(batch_size, image_size, data_dir)`` returns a loader that passes ``test_dataloader``."""
    loader = call_learner(f"get_dataloader({batch_size}, {image_size}, {str(data_dir)!r})", get_dataloader,
                          batch_size, image_size, data_dir,
                          todo="write get_dataloader: load the images, resize them to image_size, and return a "
                               "shuffling DataLoader of (images in [0, 1], labels)")
    test_dataloader(loader, image_size, batch_size)


def test_scale(scale):
    """``scale(x, feature_range=(-1, 1))`` maps [0, 1] linearly onto ``feature_range``, the same for every batch."""
    todo = "write scale: x * (max - min) + min, with (min, max) = feature_range"
    x = torch.linspace(0, 1, 11).view(1, 1, 1, 11).repeat(2, 3, 4, 1)
    y = call_learner("scale(x)", scale, x.clone(), todo=todo)
    check(torch.is_tensor(y) and tuple(y.shape) == tuple(x.shape), f"a tensor of shape {tuple(x.shape)}",
          f"{type(y).__name__} {tuple(getattr(y, 'shape', ()))}", "scale element-wise and return the result")
    check(math.isclose(float(y.min()), -1, abs_tol=1e-5) and math.isclose(float(y.max()), 1, abs_tol=1e-5),
          "range [-1, 1]", f"range {float(y.min()):.3f}..{float(y.max()):.3f}",
          "x * (max - min) + min with feature_range=(-1, 1)")
    check(torch.allclose(y[0, 0, 0], torch.linspace(-1, 1, 11), atol=1e-5), "a linear map (0.5 -> 0)",
          f"{[round(v, 3) for v in y[0, 0, 0].tolist()]}", "use a linear map, no clamping or squashing")
    part = torch.tensor([0.25, 0.5, 0.75]).view(1, 1, 1, 3)
    y = call_learner("scale(x)", scale, part.clone())
    check(torch.allclose(y.flatten(), torch.tensor([-0.5, 0.0, 0.5]), atol=1e-5),
          "the same map for every batch: 0.25 -> -0.5, 0.5 -> 0, 0.75 -> 0.5",
          f"{[round(v, 3) for v in y.flatten().tolist()]} for a batch that spans only [0.25, 0.75]",
          "don't use the batch's own min and max: ToTensor already gives [0, 1], so map 0 -> min and 1 -> max")
    if accepts_second_argument(scale):
        for low, high in ((0.0, 1.0), (-2.0, 3.0)):
            y = call_learner(f"scale(x, ({low:g}, {high:g}))", scale, x.clone(), (low, high))
            want = torch.linspace(low, high, 11)
            check(torch.allclose(y[0, 0, 0], want, atol=1e-5), f"feature_range=({low:g}, {high:g}) maps [0, 1] "
                  f"onto [{low:g}, {high:g}]", f"{[round(v, 3) for v in y[0, 0, 0].tolist()]}",
                  "use feature_range's min and max instead of hard-coding -1 and 1")
    passed()


# ---------------------------------------------------------------- initialisation
