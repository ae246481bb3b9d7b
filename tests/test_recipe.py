"""The recipe flags the quality search screens: DiffAugment, lazy R1, several D steps per G step, learning-rate decay,
mirrored reals.
Each must do what its help line says, stay off by default, and keep runs repeatable and exactly resumable."""
import pytest
import torch

from facegan.augment import augment, cutout, parse_policy, translation
from facegan.checkpoint import load_checkpoint
from facegan.config import TrainConfig
from facegan.rundir import read_losses
from facegan.train import Trainer, train

from test_train import small


def _images(n=8, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_policy_names_are_checked():
    assert parse_policy("") == ()
    assert parse_policy(" translation, cutout ") == ("translation", "cutout")
    with pytest.raises(ValueError, match="unknown augmentation 'flip'.*color, translation, cutout"):
        parse_policy("translation,flip")
    with pytest.raises(ValueError, match="unknown augmentation"):
        TrainConfig(augment="colour").validate()


def test_translation_shifts_each_image_by_a_whole_number_of_pixels_and_fills_with_grey():
    images = _images(32)
    shifted = translation(images, torch.Generator().manual_seed(1))
    assert shifted.shape == images.shape
    shifts = set()
    for original, moved in zip(images, shifted):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(_shift(original, dy, dx), moved)]
        assert len(found) == 1, "each image is its original shifted by at most 2 pixels (1/8 of 16)"
        shifts.add(found[0])
    assert len(shifts) > 5, "the shifts differ from image to image"


def _shift(image, dy, dx):
    out = torch.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_cutout_zeroes_one_square_of_half_the_side_clipped_at_the_border():
    images = _images(64)
    cut = cutout(images, torch.Generator().manual_seed(2))
    for original, result in zip(images, cut):
        zeroed = (result == 0).all(0)
        assert torch.equal(result[:, ~zeroed], original[:, ~zeroed]), "outside the square nothing changes"
        rows, cols = zeroed.any(1).nonzero().flatten(), zeroed.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert zeroed[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all(), "one solid rectangle"
        assert (len(rows) == 8 or rows.min() == 0 or rows.max() == 15)  # the full side unless clipped
    assert len({int(r.eq(0).all(0).nonzero()[:, 0].min()) for r in cut}) > 3, "the square moves"


def test_color_changes_brightness_saturation_and_contrast_per_image():
    images = _images(16)
    coloured = augment(images, ("color",), torch.Generator().manual_seed(3))
    assert coloured.shape == images.shape and not torch.allclose(coloured, images)
    shift = (coloured - images).mean(dim=(1, 2, 3))
    assert shift.std() > 0.1, "each image gets its own change"


def test_augmentation_is_differentiable_repeatable_and_keeps_the_dtype():
    images = _images().requires_grad_(True)
    policy = ("color", "translation", "cutout")
    out = augment(images, policy, torch.Generator().manual_seed(4))
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0, "G's gradient must flow through"
    again = augment(images.detach(), policy, torch.Generator().manual_seed(4))
    assert torch.equal(out.detach(), again)
    assert augment(images.detach().bfloat16(), policy, torch.Generator().manual_seed(4)).dtype == torch.bfloat16


def test_augmented_run_shows_D_augmented_reals_and_fakes(tmp_path, monkeypatch):
    import facegan.step as step_module
    calls = []
    original = step_module.augment

    def spy(images, policy, generator):
        calls.append((images.requires_grad, policy))
        return original(images, policy, generator)
    monkeypatch.setattr(step_module, "augment", spy)
    train(small(tmp_path, epochs=1, augment="translation,cutout"), progress=False)
    steps = 256 // 32
    assert len(calls) == 3 * steps, "real and fake in the D step, fake again in the G step"
    assert all(policy == ("translation", "cutout") for _, policy in calls)
    assert sum(requires_grad for requires_grad, _ in calls) == steps, "only the G step's fakes carry G's graph"


def test_mirror_flag_shows_the_step_about_half_its_real_images_flipped(tmp_path):
    from facegan.cli import build_parser
    assert build_parser().parse_args(["train", "--mirror"]).mirror is True
    seen = {}
    for mirror in (False, True):
        batches = []

        def recording_step(real, z):
            batches.append(real.clone())
            return torch.zeros(()), torch.zeros(())
        Trainer(small(tmp_path, f"mirror-{mirror}", epochs=1, mirror=mirror), step=recording_step,
                progress=False).run()
        seen[mirror] = torch.cat(batches)
    flipped = (seen[True] != seen[False]).flatten(1).any(1)
    assert 0.3 < flipped.float().mean() < 0.7
    assert torch.equal(seen[True][flipped], seen[False][flipped].flip(-1))


def test_r1_penalty_is_the_squared_input_gradient_and_applied_lazily(tmp_path):
    trainer = Trainer(small(tmp_path, r1_gamma=10.0, r1_every=4), write=False, progress=False)
    real = _images(4, 32).requires_grad_(True)
    logits = trainer.D(real)
    penalty = trainer.default_step.r1_penalty(logits, real)
    gradient, = torch.autograd.grad(trainer.D(real).sum(), real)
    assert penalty.item() == pytest.approx(10.0 / 2 * gradient.pow(2).sum().item() / 4 * 4, rel=1e-4)

    applied = []
    original = trainer.default_step.r1_penalty
    trainer.default_step.r1_penalty = lambda logits, x: applied.append(trainer.state.step) or original(logits, x)
    trainer.run()
    assert applied == [0, 4, 8, 12], "every r1_every-th step only"


@pytest.mark.slow
def test_r1_penalty_flattens_D_around_real_images(tmp_path):
    def input_gradient(config):
        trainer = Trainer(config, write=False, progress=False)
        trainer.run()
        real = _images(32, 32).requires_grad_(True)
        gradient, = torch.autograd.grad(trainer.D(real).sum(), real)
        return gradient.pow(2).flatten(1).sum(1).mean().item()
    plain = input_gradient(small(tmp_path, epochs=3, precision="fp32"))
    penalised = input_gradient(small(tmp_path, epochs=3, precision="fp32", r1_gamma=10.0, r1_every=1))
    assert penalised < plain / 2


def test_several_discriminator_steps_per_generator_step(tmp_path):
    train(small(tmp_path, epochs=1, d_steps=4), progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    d_steps = [int(s["step"]) for s in state["d_optimizer"]["state"].values()]
    g_steps = [int(s["step"]) for s in state["g_optimizer"]["state"].values()]
    assert set(d_steps) == {8} and set(g_steps) == {2}
    g_losses = [row["g_loss"] for row in read_losses(tmp_path / "run")]
    assert g_losses[0:4] == [g_losses[0]] * 4 and g_losses[4] != g_losses[0], "G's loss is its last step's"


def test_learning_rates_decay_linearly_to_zero_over_the_last_fraction_of_the_run(tmp_path):
    trainer = Trainer(small(tmp_path, epochs=4, lr=1e-3, d_lr=2e-3, lr_decay=0.5), write=False, progress=False)
    seen = []
    step = trainer.default_step
    trainer.default_step = lambda *args: seen.append(
        (trainer.d_optimizer.param_groups[0]["lr"], trainer.g_optimizer.param_groups[0]["lr"])) or step(*args)
    trainer.run()
    total = 4 * 256 // 32
    expected = [min(1.0, (1 - i / total) / 0.5) for i in range(total)]
    assert [d for d, _ in seen] == pytest.approx([2e-3 * f for f in expected])
    assert [g for _, g in seen] == pytest.approx([1e-3 * f for f in expected])
    assert seen[15] == pytest.approx((2e-3, 1e-3)) and seen[-1][1] == pytest.approx(1e-3 / 16)


def test_learning_rate_decay_follows_the_time_budget(tmp_path):
    trainer = Trainer(small(tmp_path, epochs=1000, max_minutes=1.0, lr_decay=0.5), write=False, progress=False)
    now = [0.0]
    trainer.clock = lambda: now[0]
    seen = []
    step = trainer.default_step

    def timed_step(*args):
        seen.append(trainer.g_optimizer.param_groups[0]["lr"])
        now[0] += 6.0  # each step takes a tenth of the budget
        return step(*args)
    trainer.default_step = timed_step
    trainer.run()
    lr = trainer.config.lr
    assert seen == pytest.approx([lr] * 6 + [lr * f for f in (0.8, 0.6, 0.4, 0.2)])


@pytest.mark.parametrize("options", [
    dict(augment="color,translation,cutout"),
    dict(r1_gamma=1.0, r1_every=3, lr_decay=0.5),
    dict(d_steps=3),
    dict(mirror=True),
])
@pytest.mark.slow
def test_recipe_flags_keep_runs_repeatable_and_resume_exactly(tmp_path, options):
    full = train(small(tmp_path, "full", epochs=3, **options), progress=False)
    again = train(small(tmp_path, "again", epochs=3, **options), progress=False)
    assert again.losses == full.losses
    # the same 3-epoch run (its learning-rate schedule knows the whole length) stopped early, as by Ctrl-C
    stopped = Trainer(small(tmp_path, "split", epochs=3, **options), progress=False)
    stopped.run(on_epoch=lambda epoch, samples: stopped.request_stop("SIGINT") if epoch == 2 else None)
    assert 16 < stopped.state.step < 24
    resumed = train(small(tmp_path, "split", epochs=3, **options), resume=True, progress=False)
    assert resumed.losses == full.losses[stopped.state.step:]
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for net in ("generator", "discriminator"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), (net, k)


@pytest.mark.parametrize("flag, value, message", [
    ("--d-steps", "0", "d steps must be at least 1"), ("--r1-every", "0", "r1 every must be at least 1"),
    ("--r1-gamma", "-1", "r1 gamma"), ("--lr-decay", "1.5", "lr decay must lie in"),
    ("--augment", "rotate", "unknown augmentation 'rotate'"),
])
def test_bad_recipe_flags_are_usage_errors(capsys, flag, value, message):
    from facegan.cli import main
    with pytest.raises(SystemExit) as stop:
        main(["train", flag, value])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_seed_recipe_is_the_plain_method_whatever_the_defaults():
    import dataclasses

    import facegan.config as config_module
    seed = TrainConfig.recipe("seed")
    assert (seed.batch_size, seed.precision, seed.ema, seed.reuse_fake, seed.augment, seed.lr_decay,
            seed.r1_gamma, seed.d_steps, seed.loss, seed.latent, seed.real_label) == \
        (32, "fp32", 0.0, False, "", 0.0, 0.0, 1, "bce", "uniform", 0.9)
    # every option the quality search touches is pinned by the seed recipe, so changing a default cannot leak in
    searched = {"lr", "d_lr", "beta1", "beta2", "loss", "real_label", "latent", "d_norm", "d_steps", "lr_decay",
                "augment", "mirror", "r1_gamma", "ema", "batch_size", "precision"}
    assert searched <= set(config_module.RECIPES["seed"])
    assert set(config_module.RECIPES["seed"]) <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.recipe("facegan") == TrainConfig()
    assert TrainConfig.recipe("seed", seed=3, batch_size=64).batch_size == 64
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        TrainConfig.recipe("fast")


def test_cli_recipe_then_flags(tmp_path):
    import json

    from conftest import TINY
    from facegan.cli import main
    out = tmp_path / "seed"
    assert main(["train", *TINY, "--recipe", "seed", "--batch-size", "16",
                 "--epochs", "1", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert (stored["precision"], stored["ema"], stored["reuse_fake"], stored["batch_size"]) == ("fp32", 0.0, False, 16)
    with pytest.raises(SystemExit) as stop:
        main(["train", "--recipe", "seed", "--resume", "--out", str(out)])
    assert stop.value.code == 2


def test_the_wide_recipe_is_the_defaults_with_mirrored_faces_and_a_wider_discriminator(tmp_path):
    import json

    from conftest import TINY
    from facegan.cli import main
    wide, default = TrainConfig.recipe("wide"), TrainConfig()
    changed = set(_fields_that_differ(wide, default))
    assert changed == {"mirror", "d_conv_dim"} and (wide.mirror, wide.d_conv_dim) == (True, 48)
    out = tmp_path / "wide"
    # TINY's own --d-conv-dim is laid over the recipe's 48; the mirroring stays
    assert main(["train", *TINY, "--recipe", "wide", "--epochs", "1", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["mirror"] is True and stored["d_conv_dim"] == int(TINY[TINY.index("--d-conv-dim") + 1])


def _fields_that_differ(config: TrainConfig, base: TrainConfig) -> dict:
    """The fields where ``config`` departs from ``base``, with ``config``'s values."""
    import dataclasses
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(config, f.name) != getattr(base, f.name)}


def test_the_wide_r1_cr_recipe_is_wide_with_a_light_r1_penalty_and_lazy_consistency_regularisation(tmp_path):
    import json

    from conftest import TINY
    from facegan.cli import main
    changed = _fields_that_differ(TrainConfig.recipe("wide-r1-cr"), TrainConfig.recipe("wide"))
    assert changed == {"r1_gamma": 0.02, "cr_weight": 0.1, "cr_every": 4}
    out = tmp_path / "wide-r1-cr"
    assert main(["train", *TINY, "--recipe", "wide-r1-cr", "--epochs", "1", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert {name: stored[name] for name in changed} == changed and stored["mirror"] is True


def test_the_wider_r1_cr_recipe_is_wide_r1_cr_with_a_48_channel_generator(tmp_path):
    import json

    from conftest import TINY
    from facegan.cli import main
    changed = _fields_that_differ(TrainConfig.recipe("wider-r1-cr"), TrainConfig.recipe("wide-r1-cr"))
    assert changed == {"g_conv_dim": 48}
    # TINY's narrow widths would override the one field this recipe changes, so it trains at its own widths here
    at_its_widths = [flag for i, flag in enumerate(TINY) if "conv-dim" not in flag and "conv-dim" not in TINY[i - 1]]
    out = tmp_path / "wider-r1-cr"
    assert main(["train", *at_its_widths, "--recipe", "wider-r1-cr", "--epochs", "1", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert (stored["g_conv_dim"], stored["d_conv_dim"], stored["r1_gamma"], stored["cr_every"]) == (48, 48, 0.02, 4)


def test_the_recipe_help_spells_out_each_short_recipes_flags_from_the_recipes_themselves(capsys):
    from facegan.cli import build_parser
    from facegan.config import RECIPES
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps lines at hyphens
    assert "wide (better faces per update at 1.6x the compute per update: --mirror --d-conv-dim 48)" in printed
    assert ("--mirror --d-conv-dim 48 --r1-gamma 0.02 --cr-weight 0.1 --cr-every 4)" in printed
            and RECIPES["wide-r1-cr"]["cr_every"] == 4)
    assert all(f"{name} (" in printed for name in RECIPES)
