"""The latent-space explorer of the notebook: faces moved along a trained generator's main directions with sliders.

``explore`` always draws the static grid (a row per direction, faces from one end to the other), so a headless run
(nbconvert, papermill) shows what the directions do; in Jupyter it adds a slider per direction and a picture of a
few faces that follows the sliders as they are dragged.
"""
from __future__ import annotations

import io

import torch

from .directions import Directions, direction_grid, draw, find_directions
from .images import grid
from .models import sample_latent
from .plots import show_images


def png(images: torch.Tensor, nrow: int, scale: int = 3) -> bytes:
    """A grid of [-1, 1] images as PNG bytes, each pixel ``scale`` pixels wide (32×32 faces are small on screen)."""
    from PIL import Image
    picture = Image.fromarray(grid(images, nrow).numpy())
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def sliders(G: torch.nn.Module, directions: Directions, z: torch.Tensor, reach: float = 3.0):
    """An ipywidgets box: a slider per direction (in spreads of the latents along it) above the faces of ``z``
    moved by the sliders' values, redrawn as a slider moves."""
    import ipywidgets as widgets
    controls = [widgets.FloatSlider(value=0.0, min=-reach, max=reach, step=0.25, description=f"direction {i + 1}",
                                    continuous_update=True) for i in range(len(directions.vectors))]
    picture = widgets.Image(format="png", value=png(draw(G, z), nrow=len(z)))

    def redraw(change=None):
        amounts = torch.tensor([control.value for control in controls])
        picture.value = png(draw(G, directions.move(z, amounts)), nrow=len(z))
    for control in controls:
        control.observe(redraw, names="value")
    return widgets.VBox([*controls, picture])


def explore(G: torch.nn.Module, z_size: int, *, k: int = 4, faces: int = 6, steps: int = 7, reach: float = 3.0,
            latent: str = "uniform", seed: int = 0) -> Directions:
    """Find ``G``'s top ``k`` directions, draw the static grid for the first of ``faces`` faces, and show the
    sliders (where a notebook front end can display widgets). Returns the directions."""
    from IPython.display import display
    directions = find_directions(G, z_size, k=k, latent=latent, seed=seed)
    z = sample_latent(faces, z_size, latent, generator=torch.Generator().manual_seed(seed + 1))
    import matplotlib.pyplot as plt
    figure = show_images(direction_grid(G, directions, z[0], steps=steps, reach=reach), nrow=steps,
                         title=f"Each row: one face along one of the top {k} directions, -{reach:g} to +{reach:g}")
    display(figure)  # the grid first, then the sliders below it
    plt.close(figure)
    display(sliders(G, directions, z, reach))
    return directions
