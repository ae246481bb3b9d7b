"""The options issue 42's recipes add: minibatch standard deviation in D, balanced consistency regularisation (bCR)
and top-k generator updates. Each must compute what its help line says, reach the run through the config (and a
checkpoint), and stay off by default."""
import copy

import pytest
import torch
from torch import nn

from facegan.config import TrainConfig
from facegan.models import Discriminator, discriminator_loss, generator_loss, minibatch_stddev
from facegan.step import DefaultStep
from facegan.train import Trainer, train

from test_train import small


def test_minibatch_stddev_is_each_groups_feature_spread_broadcast_as_a_channel():
    x = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for i in range(8):
        group = x[i % 2::2]  # groups of 4: images i, i + 2, i + 4, i + 6 share one value
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 3], torch.full((2, 2), expected.item()))
    # a group of identical images has (almost) no spread; a batch 4 does not divide is one group
    same = minibatch_stddev(x[:1].repeat(4, 1, 1, 1))
    assert same[:, 3].max() < 1e-3
    odd = minibatch_stddev(x[:6])
    assert torch.allclose(odd[:, 3], odd[0, 3].expand(6, 2, 2))


def test_a_minibatch_stddev_discriminator_sees_across_the_batch_and_keeps_one_pass_exact():
    torch.manual_seed(0)
    one, two = Discriminator(8, mbstd=True), Discriminator(8, mbstd=True)
    two.load_state_dict(one.state_dict())
    assert one.fc.in_features == (32 * 2 + 1) * 2 * 2 == Discriminator(8).fc.in_features + 4
    real, fake = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32) * 0.5
    # one pass over the stacked reals and fakes: the spread is taken within each batch, as in two passes
    torch.testing.assert_close(one(torch.cat([real, fake]), parts=2), torch.cat([two(real), two(fake)]),
                               rtol=1e-5, atol=1e-5)
    one.eval()
    changed = real.clone()
    changed[4] = 0  # image 4 is in image 0's group: image 0's logit moves, through the spread alone
    assert not torch.allclose(one(real)[0], one(changed)[0])
    plain = Discriminator(8).eval()
    assert torch.allclose(plain(real)[0], plain(changed)[0])


def bce_and_logit_gaps(trainer, real, z, noise):
    """The D loss's parts as bCR adds them up, rebuilt by hand from copies of the trainer's networks and of the
    step's noise: BCE on the reals and fakes, and |D(x) - D(T x)|^2 + |D(G z) - D(T G z)|^2."""
    D, G = copy.deepcopy(trainer.D), copy.deepcopy(trainer.G)
    views = DefaultStep(trainer.config, copy.deepcopy(noise))
    with torch.no_grad():
        fake = G(z)
        seen = [real, fake, views.consistency_view(real), views.consistency_view(fake)]
        logits = [D(images) for images in seen]
    assert not torch.equal(seen[2], real) and not torch.equal(seen[3], fake)
    gaps = sum((a - b).pow(2).mean() for a, b in zip(logits[:2], logits[2:]))
    assert gaps.item() > 1e-4, "the views must differ enough for the test to see the term"
    return discriminator_loss(logits[0], logits[1], "bce", trainer.config.real_label).item(), gaps.item()


def fixed_batch():
    """32 real images and latents in [-1, 1], the same on every call."""
    real = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.rand(32, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return real, z


def test_consistency_regularisation_adds_lambda_times_the_squared_logit_gaps(tmp_path):
    """d_loss = BCE + lambda (|D(x) - D(T x)|^2 + |D(G z) - D(T G z)|^2), T a flip at even odds and a shift of up to
    4 pixels, drawn from the run's noise."""
    config = small(tmp_path, cr_weight=10.0, precision="fp32", channels_last=False).resolved(torch.device("cpu"))
    trainer = Trainer(config, write=False, progress=False)
    real, z = fixed_batch()
    noise = torch.Generator().manual_seed(3)
    bce, gaps = bce_and_logit_gaps(trainer, real, z, noise)
    d_loss, *_ = DefaultStep(config, noise)(trainer.D, trainer.G, trainer.d_optimizer, trainer.g_optimizer, real, z, 0)
    assert d_loss.item() == pytest.approx(bce + 10.0 * gaps, rel=1e-5)


def test_lazy_consistency_regularisation_runs_on_every_kth_step_at_k_times_the_weight(tmp_path):
    """With cr_every 4 the D loss is the plain loss on steps 1-3 and BCE + 4 lambda gaps on step 4: the same
    penalty per update on average, with D's extra passes over the copies a quarter as often."""
    config = small(tmp_path, cr_weight=0.1, cr_every=4, precision="fp32", channels_last=False).resolved(
        torch.device("cpu"))
    trainer = Trainer(config, write=False, progress=False)
    real, z = fixed_batch()
    for step_index, weight in ((1, 0.0), (4, 0.1 * 4)):
        noise = torch.Generator().manual_seed(3)
        bce, gaps = bce_and_logit_gaps(trainer, real, z, noise)
        d_loss, *_ = DefaultStep(config, noise)(trainer.D, trainer.G, trainer.d_optimizer, trainer.g_optimizer,
                                                real, z, step_index)
        assert d_loss.item() == pytest.approx(bce + weight * gaps, rel=1e-5)
    with pytest.raises(ValueError, match="cr every"):
        TrainConfig(cr_every=0).validate()


def test_top_k_keeps_the_fakes_D_scores_most_real_on_a_shrinking_schedule():
    step = DefaultStep(TrainConfig(top_k=0.5), torch.Generator())
    logits = torch.randn(64, 1, generator=torch.Generator().manual_seed(0))
    assert step.best_scored(logits, 0).shape == (64,)  # at first every fake trains G
    assert step.best_scored(logits, 100).shape == (63,)  # 0.99 of 64, rounded
    kept = step.best_scored(logits, 100_000)  # long after the floor is reached
    assert torch.equal(kept, logits.flatten().sort(descending=True).values[:32])
    off = DefaultStep(TrainConfig(), torch.Generator())
    assert off.best_scored(logits, 100_000) is logits


def test_top_k_generator_updates_send_no_gradient_to_the_fakes_left_out(tmp_path):
    """Networks without BatchNorm, so each fake depends on its own latent and each score on its own fake only:
    after the G step, exactly the latents of the top half of the fakes (by D's score) have a gradient."""
    config = small(tmp_path, top_k=0.5, precision="fp32", channels_last=False).resolved(torch.device("cpu"))
    G = nn.Sequential(nn.Linear(16, 3 * 32 * 32), nn.Tanh(), nn.Unflatten(1, (3, 32, 32)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1))
    trainer = Trainer(config, D=D, G=G, write=False, progress=False)
    real = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = (torch.rand(32, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1).requires_grad_(True)
    with torch.no_grad():
        fake = G(z)  # G before its step
    step = DefaultStep(config, torch.Generator())
    _, g_loss, *_ = step(trainer.D, G, trainer.d_optimizer, trainer.g_optimizer, real, z, 100_000)
    with torch.no_grad():
        scores = trainer.D(fake).flatten()  # D after its step, as the G step saw it
    best = set(scores.topk(16).indices.tolist())
    trained = {i for i in range(32) if z.grad[i].abs().sum() > 0}
    assert trained == best
    assert g_loss.item() == pytest.approx(generator_loss(scores.topk(16).values).item(), rel=1e-5)


def test_the_new_options_train_resume_exactly_and_are_off_by_default(tmp_path):
    defaults = TrainConfig()
    assert (defaults.d_mbstd, defaults.cr_weight, defaults.cr_every, defaults.top_k) == (False, 0.0, 1, 1.0)
    options = dict(d_mbstd=True, cr_weight=10.0, cr_every=2, top_k=0.5)
    full = train(small(tmp_path, "full", epochs=3, **options), progress=False)
    train(small(tmp_path, "split", epochs=2, **options), progress=False)
    resumed = train(small(tmp_path, "split", epochs=3, **options), resume=True, progress=False)
    assert resumed.losses == full.losses[-8:]
    for field, value, message in (("cr_weight", -1.0, "cr weight"), ("top_k", 0.0, "top k"), ("top_k", 1.5, "top k")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**{field: value}).validate()
