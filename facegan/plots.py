"""Pictures for people: image grids and the training-loss plot (matplotlib, headless-safe)."""
from __future__ import annotations

import os

import numpy as np
import torch

from .images import grid


def _pyplot():
    import matplotlib
    if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower() and \
            "ipykernel" not in matplotlib.get_backend():
        matplotlib.use("Agg")  # no screen: draw to files (Jupyter keeps its inline backend)
    import matplotlib.pyplot as plt
    return plt


def smooth(values, window: int = 50) -> np.ndarray:
    """Moving average that keeps the length (a shorter window at the start)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    window = max(1, min(window, len(values)))
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = (cumulative[window:] - cumulative[:-window]) / window
    head = cumulative[1:window] / np.arange(1, window)
    return np.concatenate([head, out])


def plot_losses(losses, *, window: int | None = None, ax=None, title: str = "Training losses"):
    """Discriminator vs generator loss per step, raw (faint) and smoothed. ``losses`` is a sequence of
    (d_loss, g_loss) pairs. Returns the matplotlib figure."""
    plt = _pyplot()
    losses = np.asarray(losses, dtype=float).reshape(-1, 2)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4))
    else:
        fig = ax.figure
    window = window or max(1, len(losses) // 50)
    steps = np.arange(1, len(losses) + 1)
    for column, name, colour in ((0, "Discriminator", "tab:blue"), (1, "Generator", "tab:orange")):
        ax.plot(steps, losses[:, column], color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(losses[:, column], window), color=colour, label=f"{name} (smoothed)")
    ax.set_xlabel("step")
    ax.set_ylabel("BCE loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def show_images(images: torch.Tensor, *, nrow: int | None = None, title: str | None = None, ax=None,
                value_range: str = "signed"):
    """Show a batch as one grid. ``value_range`` is 'signed' for [-1, 1] (generator output) or 'unit' for [0, 1]
    (the DataLoader's images)."""
    plt = _pyplot()
    images = images.detach().float().cpu()
    if value_range == "unit":
        images = images * 2 - 1
    if ax is None:
        side = min(12, 1.2 * (nrow or int(np.ceil(np.sqrt(len(images))))))
        fig, ax = plt.subplots(figsize=(side, side * 0.8))
    else:
        fig = ax.figure
    ax.imshow(grid(images, nrow).numpy())
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
