"""The latent-space explorer: GANSpace directions of a generator, the grid of faces moved along them, the CLI."""
import pytest
import torch
from PIL import Image

from facegan.cli import main
from facegan.directions import direction_grid, draw, find_directions, strength
from facegan.models import Generator


def known_generator(z_size=16, conv_dim=4):
    """A generator whose first layer stretches latent axes 0, 1, 2 by 10, 5 and 2.5 and squashes every other one:
    its top directions are known."""
    torch.manual_seed(0)
    G = Generator(z_size, conv_dim)
    with torch.no_grad():
        G.fc.weight.mul_(1e-3)
        G.fc.weight[:3, :3] = torch.diag(torch.tensor([10.0, 5.0, 2.5]))
    return G


def test_the_directions_are_orthonormal_and_found_in_order_of_the_variation_they_make():
    G = known_generator()
    found = find_directions(G, 16, k=3, n=4096)
    assert torch.allclose(found.vectors @ found.vectors.T, torch.eye(3), atol=1e-5)
    for i in range(3):  # direction i is latent axis i (up to its sign)
        assert found.vectors[i, i].abs() > 0.99, found.vectors
    # a step of one spread is the latents' own spread along it: uniform in [-1, 1] has 1/sqrt(3)
    assert torch.allclose(found.spread, torch.full((3,), 3 ** -0.5), atol=0.02)


def test_the_grid_has_a_row_per_direction_and_moves_one_direction_per_row():
    G = known_generator()
    found = find_directions(G, 16, k=3, n=1024)
    z = torch.rand(16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    grid = direction_grid(G, found, z, steps=5, reach=2.0)
    assert grid.shape == (15, 3, 32, 32) and grid.min() >= -1 and grid.max() <= 1
    centre = draw(G, z[None])[0]
    for row in range(3):
        assert torch.allclose(grid[row * 5 + 2], centre, atol=1e-5)  # the middle column is the face itself
        moved = z + 2.0 * found.spread[row] * found.vectors[row]
        assert torch.allclose(grid[row * 5 + 4], draw(G, moved[None])[0], atol=1e-5)
    # along the top direction the face changes more than along random directions of the same length (here the
    # first layer stretches three of sixteen axes, so a random direction changes the face about a third as much)
    change = (grid[4] - grid[0]).abs().mean()
    randoms = torch.nn.functional.normalize(torch.randn(16, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    ends = [draw(G, torch.stack([z + r * 2 * found.spread[0], z - r * 2 * found.spread[0]])) for r in randoms]
    assert change > 2 * torch.stack([(a - b).abs().mean() for a, b in ends]).mean()


def test_the_cli_draws_the_grid(run_dir, tmp_path, capsys):
    out = tmp_path / "directions.png"
    assert main(["directions", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(out), "--k", "3",
                 "--steps", "5"]) == 0
    with Image.open(out) as grid:
        assert grid.size == (5 * 32 + 6 * 2, 3 * 32 + 4 * 2)  # 5 columns, 3 rows, 2-pixel padding
    printed = capsys.readouterr().out
    assert "a row per direction" in printed and "against random directions of the same length" in printed
    assert main(["directions", "--checkpoint", str(run_dir / "checkpoint.pt"), "--out", str(tmp_path / "x.jpg")]) == 1


@pytest.mark.parametrize("k", [1, 4])
def test_the_notebooks_generator_works_too(k):
    """Any generator whose first layer has weights: the notebook's own class is found by its fc."""
    G = Generator(16, 4)
    assert find_directions(G, 16, k=k, n=256).vectors.shape == (k, 16)


def test_the_sliders_redraw_the_faces_as_they_move():
    from facegan.explorer import explore, sliders
    G = known_generator()
    found = find_directions(G, 16, k=3, n=512)
    box = sliders(G, found, torch.rand(4, 16) * 2 - 1)
    *controls, picture = box.children
    assert [c.description for c in controls] == ["direction 1", "direction 2", "direction 3"]
    assert picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = picture.value
    controls[0].value = 2.0
    assert picture.value != before
    controls[0].value = 0.0
    assert picture.value == before  # back where it started: the same faces
    assert explore(G, 16, k=2, faces=3).vectors.shape == (2, 16)  # outside a notebook too (headless)


def test_the_strength_of_a_top_direction_stands_out_from_random_ones():
    G = known_generator()
    found = find_directions(G, 16, k=3, n=2048)
    per_direction, random = strength(G, found, 16, n=64)
    assert per_direction.shape == (3,) and (per_direction > 0).all() and random > 0
    assert per_direction[0] > 2 * random  # the axis stretched 10x, against random directions in 16 dimensions
