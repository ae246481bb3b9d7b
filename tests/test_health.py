"""Training-health signals: D(x) and D(G(z)) in losses.csv, and one plain warning for each failure, on runs forced
into it."""
import pytest
import torch

from facegan.config import TrainConfig
from facegan.health import HealthMonitor, diversity
from facegan.rundir import read_losses
from facegan.train import Trainer


def tiny(tmp_path, **overrides):
    values = dict(data="synthetic", synthetic_count=256, batch_size=16, epochs=2, d_conv_dim=8, g_conv_dim=8,
                  z_size=16, n_samples=16, threads="2", out=str(tmp_path / "run"))
    return TrainConfig(**{**values, **overrides})


def test_losses_csv_carries_d_of_x_and_d_of_g_of_z(tmp_path):
    Trainer(tiny(tmp_path), progress=False).run()
    rows = read_losses(tmp_path / "run")
    assert len(rows) == 32
    for row in rows:
        assert 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1
    # early on D tells real from fake better than chance, as it should
    assert sum(r["d_real"] - r["d_fake"] for r in rows[-8:]) > 0


def builtin_step(trainer, real, z):
    """The built-in step, called as a user's step is: on a batch in [0, 1]."""
    return trainer.default_step(trainer.D, trainer.G, trainer.d_optimizer, trainer.g_optimizer, real * 2 - 1, z,
                                trainer.state.step)


def test_a_step_that_returns_only_losses_leaves_the_probabilities_empty(tmp_path):
    trainer = Trainer(tiny(tmp_path, epochs=1), progress=False,
                      step=lambda real, z: builtin_step(trainer, real, z)[:2])
    trainer.run()
    rows = read_losses(tmp_path / "run")
    assert all(r["d_real"] != r["d_real"] for r in rows)  # NaN: not reported
    assert (tmp_path / "run" / "losses.csv").read_text().splitlines()[1].endswith(",,")


@pytest.mark.slow
def test_a_discriminator_that_wins_outright_is_warned_about_once(tmp_path):
    # forced: the generator barely learns (lr 1e-7) while the discriminator learns fast
    config = tiny(tmp_path, lr=1e-7, d_lr=2e-3, epochs=16, synthetic_count=512, ema=0)
    with pytest.warns(UserWarning, match="discriminator is winning outright") as caught:
        Trainer(config, progress=False).run()
    messages = [str(w.message) for w in caught if "winning outright" in str(w.message)]
    assert len(messages) == 1 and "--d-lr" in messages[0]
    assert read_losses(tmp_path / "run")[-1]["d_fake"] < 0.03


def test_mode_collapse_is_warned_about(tmp_path):
    # forced: after the first epoch the generator's first layer stops listening to z, so every latent vector
    # gives the same face
    config = tiny(tmp_path, epochs=4, ema=0)

    def step(real, z):
        if trainer.state.step >= 16:
            trainer.G.fc.weight.data.zero_()
            trainer.G.fc.weight.requires_grad_(False)
        return builtin_step(trainer, real, z)
    trainer = Trainer(config, progress=False, step=step)
    with pytest.warns(UserWarning, match="losing their diversity") as caught:
        trainer.run()
    assert sum("mode collapse" in str(w.message) for w in caught) == 1


def test_a_healthy_run_is_not_warned_about():
    real = torch.rand(64, 3, 8, 8) * 2 - 1
    said = []
    monitor = HealthMonitor(real, window=10, warn=lambda message, stacklevel: said.append(message))
    for _ in range(5):
        monitor.steps(torch.tensor([[1.2, 0.9, 0.7, 0.3]] * 10))
        monitor.samples(torch.rand(16, 3, 8, 8) * 2 - 1)
    assert said == []
    # a fresh generator's grey start is not a collapse: nothing more diverse came before it
    fresh = HealthMonitor(real, window=10, warn=lambda message, stacklevel: said.append(message))
    fresh.samples(torch.zeros(16, 3, 8, 8))
    assert said == [] and diversity(real) > 0.4


def test_the_loss_alone_tells_when_probabilities_are_unknown():
    said = []
    monitor = HealthMonitor(torch.rand(8, 3, 4, 4), window=5, warn=lambda message, stacklevel: said.append(message))
    monitor.steps(torch.tensor([[0.01, 9.0, float("nan"), float("nan")]] * 5))
    assert len(said) == 1 and "D loss 0.010" in said[0] and "D(G(z))" not in said[0]
