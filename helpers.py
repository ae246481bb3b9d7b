"""Conveniences for dlnd_face_generation.ipynb: parameters, getting the data, and pictures.

Thin over the facegan package, which holds the real implementation.
"""
from __future__ import annotations

import os
import time

import torch

from facegan.download import UDACITY_URL, download, ensure_udacity_data, safe_extract  # noqa: F401
from facegan.errors import DownloadError
from facegan.images import save_gif
from facegan.models import interpolate, sample_latent
from facegan.plots import plot_losses, show_images

__all__ = ["env", "get_data", "show_batch", "view_samples", "plot_losses", "interpolation_grid",
           "animate_samples", "estimate_epoch_seconds", "duration", "download", "safe_extract", "DownloadError"]


def env(name: str, default):
    """A notebook parameter: ``FACEGAN_<NAME>`` from the environment when set (cast to the default's type; for a
    default of None, a number when it reads as one and None for 'none' or ''), else ``default``. Lets plain
    ``jupyter nbconvert --execute`` be steered without editing the notebook."""
    raw = os.environ.get(f"FACEGAN_{name.upper()}")
    if raw is None:
        return default
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if default is None:
            return _number_or_text(raw)
        return type(default)(raw)
    except ValueError:
        raise ValueError(f"FACEGAN_{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None


def _number_or_text(raw: str):
    text = raw.strip()
    if text.lower() in ("", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return raw


def get_data(data_dir: str = "processed_celeba_small/", url: str = UDACITY_URL, timeout: float = 30) -> str:
    """Make ``data_dir`` usable: 'synthetic', an existing folder or zip is used as it is; the default Udacity
    folder is downloaded (with a progress bar, verified, extracted safely) when missing. Offline, one clear
    message says how to get the data by hand."""
    if data_dir == "synthetic" or os.path.exists(data_dir):
        return data_dir
    if os.path.basename(os.path.normpath(data_dir)) != "processed_celeba_small":
        raise FileNotFoundError(f"data_dir '{data_dir}' does not exist: point it at your images, leave the "
                                "default to download the Udacity set, or use data_dir='synthetic'")
    return str(ensure_udacity_data(data_dir, url=url, timeout=timeout))


def show_batch(images: torch.Tensor, n: int = 20, title: str = "A batch of training images"):
    """The first ``n`` images of a DataLoader batch (values in [0, 1])."""
    return show_images(images[:n], nrow=min(n, 10), title=title, value_range="unit")


def view_samples(epoch: int, samples, n: int = 16):
    """The Udacity ``view_samples``: the generated images of ``samples[epoch]`` (values in [-1, 1])."""
    batch = samples[epoch]
    return show_images(batch[:n], nrow=min(n, 8), title=f"Generated samples, epoch {epoch % len(samples) + 1}")


@torch.no_grad()
def interpolation_grid(G, z_size: int, *, rows: int = 6, steps: int = 8, latent: str = "uniform", seed: int = 0):
    """Each row walks the latent space between two random faces: smooth changes mean G learned a continuous
    face space rather than memorising images. Returns the images and shows them."""
    g = torch.Generator().manual_seed(seed)
    ends = sample_latent(2 * rows, z_size, latent, generator=g)
    z = torch.cat([interpolate(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    images = G(z.to(device)).float().cpu()
    G.train(was_training)
    show_images(images, nrow=steps, title="Latent-space interpolation")
    return images


def animate_samples(samples, path: str = "samples.gif", seconds_per_frame: float = 0.6) -> str:
    """A GIF of the fixed latents' samples across epochs. Returns its path (show it with IPython.display.Image)."""
    save_gif(list(samples), path, seconds_per_frame=seconds_per_frame)
    return path


def duration(seconds: float) -> str:
    """A readable duration: '45 s', '12 min', '3.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_epoch_seconds(loader, step, z_size: int, device, steps: int = 3) -> float:
    """Time a few updates of ``step(real_images, z)`` on batches of ``loader``, the loader and the step training
    will use (its decoding and transforms included), and extrapolate to an epoch of ``len(loader)`` batches. Give
    ``step`` copies of the networks and optimizers, so that yours stay untrained."""
    device = torch.device(device)
    batches = iter(loader)

    def update():
        nonlocal batches
        try:
            real, _ = next(batches)
        except StopIteration:  # a loader shorter than the steps timed starts over
            batches = iter(loader)
            real, _ = next(batches)
        real = real.to(device, memory_format=torch.channels_last)
        step(real, torch.rand(real.shape[0], z_size, device=device) * 2 - 1)
    update()  # warm-up: the first update allocates
    start = time.perf_counter()
    for _ in range(steps):
        update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * len(loader)
