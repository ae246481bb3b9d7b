import json
import math

import pytest
import torch

from facegan.checkpoint import load_checkpoint
from facegan.config import TrainConfig
from facegan.devices import pick_device
from facegan.precision import resolve_precision
from facegan.rundir import read_losses
from facegan.errors import TrainingError
from facegan.train import Trainer, train


def small(tmp_path, name="run", **overrides):
    # a fixed thread count: the exactness tests compare runs bit for bit (auto may switch counts mid-run)
    values = dict(data="synthetic", synthetic_count=256, batch_size=32, epochs=2, d_conv_dim=8, g_conv_dim=8,
                  z_size=16, n_samples=16, out=str(tmp_path / name), threads="2")
    values.update(overrides)
    return TrainConfig(**values)


def test_short_run_writes_the_run_directory(tmp_path):
    config = small(tmp_path)
    result = train(config, progress=False)
    out = tmp_path / "run"
    assert result.stopped == "finished" and len(result.losses) == 2 * (256 // 32)
    assert all(math.isfinite(d) and math.isfinite(g) for d, g in result.losses)
    # the record says which arithmetic ran: --precision auto is stored as what it chose on this machine
    used = resolve_precision("auto", "cpu")
    assert json.loads((out / "config.json").read_text()) == {**config.to_dict(), "precision": used}
    rows = read_losses(out)
    assert [r["step"] for r in rows] == list(range(1, 17))
    assert [r["epoch"] for r in rows] == [1] * 8 + [2] * 8
    assert rows[-1]["images_seen"] == 16 * 32 and rows[-1]["elapsed_s"] > 0
    assert (out / "samples" / "epoch_001.png").exists() and (out / "samples" / "epoch_002.png").exists()
    assert len(result.samples) == 2 and result.samples[0].shape == (16, 3, 32, 32)
    state = load_checkpoint(out / "checkpoint.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (2, 0, 16)
    assert set(state) >= {"generator", "discriminator", "g_optimizer", "d_optimizer", "noise_rng", "config"}


@pytest.mark.slow
def test_training_learns_something(tmp_path):
    """After a few epochs on synthetic faces, generated images are closer to the data's colour statistics
    than the untrained generator's (a smoke test that gradients flow the right way)."""
    from facegan.data import load_images
    images = load_images("synthetic", 32, synthetic_count=512)
    real_mean = (images.float() / 127.5 - 1).mean((0, 2, 3))
    # the paper's learning rate: this checks the direction of the gradients on tiny networks at batch 32, where
    # the colour statistic after 96 steps swings from seed to seed (facegan's 4e-4 is measured at batch 64, README)
    config = small(tmp_path, synthetic_count=512, epochs=6, d_conv_dim=16, g_conv_dim=16, ema=0.0, lr=2e-4)
    trainer = Trainer(config, images=images, progress=False, write=False)
    before = (trainer.sample().mean((0, 2, 3)) - real_mean).abs().sum()
    trainer.run()
    after = (trainer.sample().mean((0, 2, 3)) - real_mean).abs().sum()
    assert after < before * 0.7


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.slow)])
def test_resume_is_exact(tmp_path, precision):
    full = train(small(tmp_path, "full", epochs=3, precision=precision), progress=False)
    train(small(tmp_path, "split", epochs=2, precision=precision), progress=False)
    resumed = train(small(tmp_path, "split", epochs=3, precision=precision), resume=True, progress=False)
    assert resumed.losses == full.losses[-8:]
    assert read_losses(tmp_path / "split") == [
        dict(r, elapsed_s=pytest.approx(r["elapsed_s"], abs=1e9)) for r in read_losses(tmp_path / "full")]
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for net in ("generator", "generator_ema", "discriminator"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), (net, k)


def test_resume_mid_epoch_after_a_time_budget(tmp_path):
    full = train(small(tmp_path, "full", epochs=2), progress=False)
    trainer = Trainer(small(tmp_path, "split", epochs=2, max_minutes=1), progress=False)
    # a clock that jumps past the one-minute budget once three steps have run
    original, steps = trainer.train_step, []
    trainer.train_step = lambda real: steps.append(1) or original(real)
    trainer.clock = lambda: 0.0 if len(steps) < 3 else 61.0
    stopped = trainer.run()
    assert stopped.stopped == "time budget of 1 minutes reached" and len(stopped.losses) == 3
    assert stopped.signal is None  # a budget is not an interruption: benches score such runs
    state = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert (state["epoch"], state["batch"], state["step"]) == (0, 3, 3)
    assert (tmp_path / "split" / "samples" / "epoch_001.png").exists()
    resumed = train(small(tmp_path, "split", epochs=2), resume=True, progress=False)
    assert stopped.losses + resumed.losses == full.losses
    assert [r["step"] for r in read_losses(tmp_path / "split")] == list(range(1, 17))


def test_a_trainer_stopped_by_ctrl_c_trains_on_when_run_again(tmp_path):
    """Ctrl-C (a real SIGINT) stops run() cleanly after a step; calling run() again continues the same run to its
    end, where it used to stop again at once (the first signal was remembered), and the two parts make the whole."""
    import os
    import signal
    full = train(small(tmp_path, "full", epochs=2), progress=False)
    trainer = Trainer(small(tmp_path, "split", epochs=2), progress=False)
    original, steps = trainer.train_step, []

    def interrupted_at_the_third_step(real):
        steps.append(1)
        if len(steps) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(real)
    trainer.train_step = interrupted_at_the_third_step
    first = trainer.run()
    assert first.stopped == "stopped by SIGINT" and first.signal == "SIGINT" and 3 <= trainer.state.step < 16
    second = trainer.run()
    assert second.stopped == "finished" and second.signal is None and trainer.state.step == 16
    assert first.losses + second.losses == full.losses


def test_losses_written_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    train(small(tmp_path, epochs=1), progress=False)
    path = tmp_path / "run" / "losses.csv"
    path.write_text(path.read_text() + "9,2,0.1,0.2,288,1.0\n10,2,0.1,0.2,320,1.0\n")
    train(small(tmp_path, epochs=2), resume=True, progress=False)
    assert [r["step"] for r in read_losses(tmp_path / "run")] == list(range(1, 17))


def test_only_the_writing_process_touches_the_run_directory_on_resume(tmp_path):
    """Another DDP rank (write=False) resumes from the same directory as rank 0: if it also rewrote losses.csv, rank
    0's clean-up of stale temporary files could delete the rank's half-moved file and crash it."""
    train(small(tmp_path, epochs=1), progress=False)
    run = tmp_path / "run"
    path = run / "losses.csv"
    path.write_text(path.read_text() + "9,2,0.1,0.2,288,1.0\n")
    before = {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()}
    Trainer(small(tmp_path, epochs=2), progress=False, write=False).resume()
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()} == before
    Trainer(small(tmp_path, epochs=2), progress=False).resume()
    assert [r["step"] for r in read_losses(run)] == list(range(1, 9))


def test_resume_refuses_other_shapes_and_missing_checkpoints(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(small(tmp_path), resume=True, progress=False)
    train(small(tmp_path, epochs=1), progress=False)
    with pytest.raises(TrainingError, match="image_size=32 but this run asks for 64"):
        train(small(tmp_path, image_size=64), resume=True, progress=False)


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    train(small(tmp_path, epochs=1), progress=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    trainer = Trainer(small(tmp_path, epochs=2), progress=False)
    trainer.resume()
    original = trainer.train_step
    monkeypatch.setattr(trainer, "train_step",
                        lambda real: tuple(x * float("nan") for x in original(real)))
    with pytest.raises(TrainingError, match="diverged at step 9"):
        trainer.run()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(TrainingError, match="is a file"):
        train(small(tmp_path), progress=False)


def test_user_networks_and_optimizers_are_trained(tmp_path):
    from facegan.models import Discriminator, Generator
    D, G = Discriminator(8), Generator(16, 8)
    d_opt, g_opt = torch.optim.Adam(D.parameters(), 1e-3), torch.optim.Adam(G.parameters(), 1e-3)
    before = G.fc.weight.clone()
    trainer = Trainer(small(tmp_path, epochs=1), D=D, G=G, d_optimizer=d_opt, g_optimizer=g_opt, progress=False)
    trainer.run()
    assert trainer.G is G and not torch.equal(before, G.fc.weight)


@pytest.mark.slow
def test_spectral_norm_hinge_loss_and_two_learning_rates_train_and_resume_exactly(tmp_path):
    options = dict(d_norm="spectral", loss="hinge", lr=1e-4, d_lr=4e-4)
    full = train(small(tmp_path, "full", epochs=3, **options), progress=False)
    train(small(tmp_path, "split", epochs=2, **options), progress=False)
    resumed = train(small(tmp_path, "split", epochs=3, **options), resume=True, progress=False)
    assert resumed.losses == full.losses[-8:]
    state = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert [g["lr"] for g in state["d_optimizer"]["param_groups"]] == [4e-4]
    assert [g["lr"] for g in state["g_optimizer"]["param_groups"]] == [1e-4]
    assert any(k.endswith("parametrizations.weight.original") for k in state["discriminator"])


def test_the_default_batch_is_the_same_on_every_device_and_recorded(tmp_path):
    """64 on the CPU and on a GPU alike: an epoch gives the same number of updates everywhere."""
    assert TrainConfig().batch_size == 64
    for device in ("cpu", "cuda", "mps"):
        assert TrainConfig().resolved(torch.device(device)).batch_size == 64
    config = small(tmp_path, batch_size=TrainConfig.batch_size, synthetic_count=128, epochs=1)
    result = train(config, progress=False)
    assert len(result.losses) == 128 // 64
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 64
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["batch_size"] == 64


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be at least 1"), ("batch_size", -1, "batch size"), ("lr", 0, "learning rate"),
    ("image_size", 48, "image size 48"), ("arch", "vgg", "unknown arch"), ("max_minutes", -1, "max minutes"),
    ("d_lr", 0, "discriminator learning rate"), ("loss", "wgan", "unknown loss"), ("d_norm", "layer", "unknown discriminator norm"),
])
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value}).validate()


def test_ema_averages_weights_and_remeasures_batchnorm(tmp_path):
    from facegan.models import Generator
    from facegan.ema import EMA
    G = Generator(16, 8)
    ema = EMA(G, decay=0.9, warmup=10)
    start = [p.clone() for p in G.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G, step=1000)  # past the warm-up: the decay itself applies
    for p_ema, p0 in zip(ema.model.parameters(), start):
        assert torch.allclose(p_ema, p0 + 0.1, atol=1e-6)
    ema.update(G, step=0)  # warm-up: decay (1 + 0) / (10 + 0) = 0.1
    for p_ema, p0 in zip(ema.model.parameters(), start):
        assert torch.allclose(p_ema, p0 + 0.1 + 0.9 * 0.9, atol=1e-5)
    # a shorter warm-up constant averages over more of the run: decay (1 + 0) / (3 + 0) = 1/3 at step 0
    slow = EMA(G, decay=0.9, warmup=3)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(3.0)
    slow.update(G, step=0)
    for p_ema, p0 in zip(slow.model.parameters(), start):
        assert torch.allclose(p_ema, p0 + 1.0 + 3.0 * 2 / 3, atol=1e-5)
    # calibration: running statistics become the batch statistics of the averaged weights on the given latents
    z = [torch.rand(64, 16) * 2 - 1]
    ema.calibrate(z)
    bn = ema.model.deconv1[1]
    with torch.no_grad():
        pre = ema.model.deconv1[0](ema.model.fc(z[0]).view(-1, 64, 2, 2))
    assert torch.allclose(bn.running_mean, pre.mean((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1 and not ema.model.training


def test_ema_is_used_for_samples_and_saved(tmp_path):
    result = train(small(tmp_path, epochs=1), progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert "generator_ema" in state and result.G_ema is not None
    assert not torch.equal(state["generator_ema"]["fc.weight"], state["generator"]["fc.weight"])
    from facegan.checkpoint import load_generator
    G, _ = load_generator(tmp_path / "run" / "checkpoint.pt")
    assert torch.equal(G.fc.weight, state["generator_ema"]["fc.weight"])
    no_ema = train(small(tmp_path, "plain", epochs=1, ema=0.0), progress=False)
    assert no_ema.G_ema is None and "generator_ema" not in load_checkpoint(tmp_path / "plain" / "checkpoint.pt")


def d_calls(trainer):
    """Counts the calls of the trainer's discriminator, with the number of images each got."""
    calls, forward = [], trainer.D.forward

    def counting(x, *args, **kwargs):
        calls.append(x.shape[0])
        return forward(x, *args, **kwargs)
    trainer.D.forward = counting
    return calls


def test_one_discriminator_pass_trains_like_two(tmp_path):
    """one_d_pass runs D once over reals and fakes stacked: in fp32 the run matches two passes per step up to
    summation order, and D is called once (2 x batch) in its step and once (batch) in G's. (Four steps: later, Adam,
    which divides tiny gradients by their own size, blows rounding differences up within a few steps; two passes
    at 1 thread against 2 threads part the same way.)"""
    runs = {}
    for one_pass in (True, False):
        config = small(tmp_path, str(one_pass), precision="fp32", one_d_pass=one_pass, synthetic_count=128,
                       epochs=1)
        trainer = Trainer(config, progress=False)
        calls = d_calls(trainer)
        result = trainer.run()
        runs[one_pass] = trainer, result, calls
    assert runs[True][2] == [64, 32] * 4 and runs[False][2] == [32, 32, 32] * 4
    for a, b in zip(runs[True][1].losses, runs[False][1].losses):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5)
    for net in ("G", "D"):
        together, apart = (getattr(runs[one_pass][0], net).state_dict() for one_pass in (True, False))
        for name, value in together.items():
            torch.testing.assert_close(value, apart[name], rtol=1e-4, atol=1e-5, msg=f"{net}.{name}")


def test_other_discriminators_get_two_passes(tmp_path):
    """A spectrally normalised D (its power iteration advances per pass) and a user's D keep one pass per batch."""
    from facegan.models import Discriminator, Generator
    spectral = Trainer(small(tmp_path, "spectral", epochs=1, d_norm="spectral"), progress=False)
    calls = d_calls(spectral)
    spectral.run()
    assert set(calls) == {32}

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Discriminator(8)

        def forward(self, x):
            return self.net(x)
    D, G = Plain(), Generator(16, 8)
    user = Trainer(small(tmp_path, "user", epochs=1), D=D, G=G, progress=False)
    calls = d_calls(user)
    user.run()
    assert set(calls) == {32}


def test_a_finished_trainer_is_freed_without_the_garbage_collector(tmp_path):
    """A Trainer holds its networks, optimisers and (under torchrun) the DDP wrappers that pin the process group.
    Nothing it owns may refer back to it strongly, or a finished run lingers until the cyclic collector happens to
    run (a reference cycle used to run through its default step)."""
    import gc
    import weakref
    trainer = Trainer(small(tmp_path, epochs=1, r1_gamma=0.1, r1_every=2), progress=False)
    assert trainer.run().stopped == "finished"
    gone, step = weakref.ref(trainer), trainer.default_step
    nets = trainer.D, trainer.G, trainer.d_optimizer, trainer.g_optimizer
    gc.disable()
    try:
        del trainer
        assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())]
    finally:
        gc.enable()
    # the step holds no trainer: it trains whatever networks it is handed, after their trainer is gone too
    d_loss, g_loss, d_real, d_fake = step(*nets, torch.zeros(2, 3, 32, 32), torch.zeros(2, 16), 0)
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
