"""helpers.py offline: parameters from the environment and the pictures (downloads: test_downloads.py)."""

import pytest
import torch

import helpers


def test_get_data_passes_other_paths_through(tmp_path):
    assert helpers.get_data("synthetic") == "synthetic"
    assert helpers.get_data(str(tmp_path)) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir='synthetic'"):
        helpers.get_data(str(tmp_path / "my_faces"))


def test_env_parameters(monkeypatch):
    monkeypatch.setenv("FACEGAN_N_EPOCHS", "3")
    monkeypatch.setenv("FACEGAN_LR", "0.001")
    monkeypatch.setenv("FACEGAN_DATA_DIR", "synthetic")
    assert helpers.env("N_EPOCHS", 20) == 3
    assert helpers.env("LR", 0.0002) == 0.001
    assert helpers.env("DATA_DIR", "x") == "synthetic"
    assert helpers.env("SEED", 7) == 7
    monkeypatch.setenv("FACEGAN_SEED", "seven")
    with pytest.raises(ValueError, match="FACEGAN_SEED='seven' is not a valid int"):
        helpers.env("SEED", 0)


def test_a_parameter_whose_default_is_none_reads_a_number_or_none(monkeypatch):
    assert helpers.env("BATCH_SIZE", None) is None
    for raw, value in (("128", 128), ("0.5", 0.5), ("none", None), ("", None), ("cuda", "cuda")):
        monkeypatch.setenv("FACEGAN_BATCH_SIZE", raw)
        assert helpers.env("BATCH_SIZE", None) == value


def test_pictures(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image
    from facegan.models import Generator
    samples = [torch.rand(16, 3, 32, 32) * 2 - 1 for _ in range(3)]
    assert helpers.view_samples(-1, samples).axes[0].get_title() == "Generated samples, epoch 3"
    fig = helpers.plot_losses([(1.0 + i % 3, 0.5) for i in range(200)])
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and len(lines[1].get_ydata()) == 200  # raw and smoothed, per network
    assert helpers.show_batch(torch.rand(8, 3, 32, 32)) is not None
    walk = helpers.interpolation_grid(Generator(10, 8), 10, rows=3, steps=5)
    assert walk.shape == (15, 3, 32, 32)
    path = helpers.animate_samples(samples, str(tmp_path / "a.gif"))
    with Image.open(path) as gif:
        assert gif.n_frames == 3
    plt.close("all")


def test_the_epoch_estimate_times_the_loader_and_step_that_will_train():
    """The estimate runs the learner's own loader (its decoding and transforms) and step, and scales to the
    loader's length: a loader twice as slow per batch gives about twice the estimate."""
    import time

    class Slow(torch.utils.data.Dataset):
        def __init__(self, pause):
            self.pause = pause

        def __len__(self):
            return 40

        def __getitem__(self, i):
            time.sleep(self.pause)
            return torch.rand(3, 32, 32), 0
    steps = []

    def step(real, z):
        steps.append((real.shape, z.shape, bool(real.is_contiguous(memory_format=torch.channels_last))))
    fast, slow = (helpers.estimate_epoch_seconds(torch.utils.data.DataLoader(Slow(p), batch_size=4), step, 16, "cpu")
                  for p in (0.002, 0.004))
    assert steps[0] == (torch.Size([4, 3, 32, 32]), torch.Size([4, 16]), True) and len(steps) == 8
    assert 10 * 4 * 0.002 <= fast < slow and 1.5 < slow / fast < 2.5  # 10 batches of 4 items


def test_duration():
    assert [helpers.duration(s) for s in (45, 600, 5 * 3600)] == ["45 s", "10 min", "5.0 h"]
