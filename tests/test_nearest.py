"""`nearest`: each generated face beside its closest training images, and a summary that tells copying apart."""
import pytest
import torch
from PIL import Image

from facegan.cli import main
from facegan.data import load_images
from facegan.nearest import neighbour_grid, nearest_neighbours


def test_copies_are_found_at_distance_zero_and_the_summary_says_so():
    training = load_images("synthetic", 32, synthetic_count=64, seed=1)
    copies = training[[3, 10, 41]]
    found = nearest_neighbours(copies, training, k=4, space="pixel")
    assert found.index[:, 0].tolist() == [3, 10, 41]
    assert torch.all(found.distance[:, 0] == 0) and torch.all(found.distance[:, 1:] > 0)
    assert torch.all(found.distance[:, :-1] <= found.distance[:, 1:])  # nearest first
    assert found.baseline > 0 and "ratio 0.00" in found.summary()
    fresh = load_images("synthetic", 32, synthetic_count=3, seed=99)
    assert nearest_neighbours(fresh, training, k=2, space="pixel").distance[:, 0].min() > 0
    grid = neighbour_grid(copies, training, found)
    assert grid.shape == (3 * 5, 3, 32, 32) and torch.equal(grid[0], grid[1])  # each copy beside its original


@pytest.mark.slow
def test_inception_space(udacity_dir):
    training = load_images(udacity_dir, 32, progress=False)
    found = nearest_neighbours(training[[5, 7]], training, k=3, space="inception")
    assert found.space == "inception" and found.index[:, 0].tolist() == [5, 7]
    assert float(found.distance[:, 0].max()) < 1e-2 * float(found.distance[:, 1].min())


@pytest.mark.parametrize("space", ["pixel", pytest.param("inception", marks=pytest.mark.slow)])
def test_cli_writes_the_grid(run_dir, udacity_dir, tmp_path, capsys, space):
    out = tmp_path / "nearest.png"
    assert main(["nearest", "--checkpoint", str(run_dir / "checkpoint.pt"), "--data", str(udacity_dir),
                 "--out", str(out), "--n", "4", "--k", "3", "--space", space]) == 0
    said = capsys.readouterr().out
    assert f"{space} space" in said and "nearest of 40 training images" in said and "ratio" in said
    with Image.open(out) as grid:
        assert grid.size == (4 * 34 + 2, 4 * 34 + 2)  # 4 rows of a face and its 3 neighbours, 32 px + padding


def test_cli_refuses_a_non_png_out(run_dir, tmp_path, capsys):
    assert main(["nearest", "--checkpoint", str(run_dir / "checkpoint.pt"), "--data", "synthetic",
                 "--out", str(tmp_path / "grid.jpg")]) == 1
    assert "must be a .png" in capsys.readouterr().err


def test_a_copy_reads_zero_whatever_rounding_the_cpus_matmul_leaves(monkeypatch):
    """cdist's matmul form leaves a rounding residue that differs between CPUs (5e-7 for an exact copy on an AMX
    host): here every distance it returns carries such a residue, and copies must still read exactly 0."""
    real_cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda a, b, *args, **kw: real_cdist(a, b, *args, **kw) + 5.4e-7)
    training = load_images("synthetic", 32, synthetic_count=64, seed=1)
    found = nearest_neighbours(training[[3, 10, 41]], training, k=4, space="pixel")
    assert found.index[:, 0].tolist() == [3, 10, 41]
    assert torch.all(found.distance[:, 0] == 0) and torch.all(found.distance[:, 1:] > 0)
