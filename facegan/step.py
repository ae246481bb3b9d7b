"""The update rule: what one training step does to D and G.

A step trains D and G once on a batch of real images and latents and returns (d_loss, g_loss[, D(x), D(G(z))]).
The notebook's loop calls its own ``train_step``; ``Trainer.run`` calls a user's ``step(real_images, z)`` or the
built-in ``DefaultStep``, which this module holds with its options (one-pass discrimination, several D steps,
DiffAugment, R1, consistency regularisation, top-k, hinge loss), the Adam optimisers and the learning-rate schedule.
"""
from __future__ import annotations

import torch

from .augment import augment, parse_policy, translation
from .distributed import unwrap
from .models import Discriminator, discriminator_loss, generator_loss, sample_latent
from .precision import autocast

TOP_K_SHRINK = 0.99  # top-k's kept fraction is multiplied by this every 100 updates


class DefaultStep:
    """facegan's fast DCGAN step: one discriminator step on real + fake, then (every ``d_steps``-th step) one
    generator step. Like the notebook's ``train_step`` it is handed what it works on at every call (the networks
    and their optimisers), so a network swapped in later (compiled, say) is the one trained; it keeps only its
    settings and the run's noise generator, which draws fresh latents and the random choices of DiffAugment and
    of bCR's copies."""

    def __init__(self, config, noise: torch.Generator):
        self.config, self.noise = config, noise
        self.augment_policy = parse_policy(config.augment)

    def __call__(self, D, G, d_optimizer, g_optimizer, real: torch.Tensor, z: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, ...]:
        """Train D once (and G on its turn) on ``real`` in [-1, 1] and latents ``z``; ``step`` counts the updates
        done before this one. With ``augment`` D sees every image through DiffAugment; with ``r1_gamma`` its loss
        gets the R1 penalty every ``r1_every`` steps, and with ``cr_weight`` the bCR penalty every ``cr_every``
        steps; with ``top_k`` < 1 only the best-scored fakes train G. Returns d_loss, g_loss (None on a step where
        G does not train), D(x) and D(G(z)) (D's mean probabilities, from the D step)."""
        config, n, device = self.config, real.shape[0], real.device
        g_turn = step % config.d_steps == 0
        r1_turn = config.r1_gamma > 0 and step % config.r1_every == 0
        cr_turn = config.cr_weight > 0 and step % config.cr_every == 0
        if r1_turn:
            real = real.detach().requires_grad_(True)
        with autocast(device, config.precision):
            if config.reuse_fake and g_turn:
                fake = G(z)
            else:  # these fakes only train D: no graph through G is needed
                with torch.no_grad():
                    fake = unwrap(G)(z)
            seen = [self.seen_by_D(real), self.seen_by_D(fake.detach())]
            if cr_turn:
                seen += [self.consistency_view(images) for images in seen]
            real_logits, fake_logits, *view_logits = self.discriminate(D, *seen)
            d_loss = discriminator_loss(real_logits, fake_logits, config.loss, config.real_label)
            if cr_turn:  # times cr_every, since it is applied only that often
                d_loss = d_loss + config.cr_weight * config.cr_every * sum(
                    (logits.float() - view.float()).pow(2).mean()
                    for logits, view in zip((real_logits, fake_logits), view_logits))
        if r1_turn:
            d_loss = d_loss + self.r1_penalty(real_logits, real)
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        with torch.no_grad():
            d_real, d_fake = (torch.sigmoid(logits.float()).mean() for logits in (real_logits, fake_logits))
        if not g_turn:
            return d_loss.detach(), None, d_real, d_fake

        if not config.reuse_fake:
            z = sample_latent(n, config.z_size, config.latent, generator=self.noise, device=device)
        # D's weight gradients are not needed for the G step (the D step clears them anyway): skipping them saves
        # about a third of D's backward pass (the plain D, not its DDP wrapper: no D gradients to average here)
        plain_D = unwrap(D)
        plain_D.requires_grad_(False)
        try:
            with autocast(device, config.precision):
                if not config.reuse_fake:
                    fake = G(z)
                g_loss = generator_loss(self.best_scored(plain_D(self.seen_by_D(fake)), step), config.loss)
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
        finally:
            plain_D.requires_grad_(True)
        g_optimizer.step()
        return d_loss.detach(), g_loss.detach(), d_real, d_fake

    def discriminate(self, D, *batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D's logits on each batch (the reals, the fakes, and with ``cr_weight`` their copies). With
        ``one_d_pass`` and facegan's BatchNorm discriminator all go through in one pass (``parts``: each conv runs
        once over all, BatchNorm still normalises each batch apart, so the logits are those of separate passes); any
        other D gets a pass each. (A spectrally normalised D would advance its power iteration once instead of once
        a batch, so it keeps its passes too.)"""
        plain = unwrap(D)
        if (self.config.one_d_pass and isinstance(plain, Discriminator) and plain.norm == "batch"
                and len({batch.shape for batch in batches}) == 1):
            return D(torch.cat(batches), parts=len(batches)).chunk(len(batches))
        return tuple(D(batch) for batch in batches)

    def seen_by_D(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown of ``images``: themselves, or a DiffAugment view drawn from the run's noise."""
        return augment(images, self.augment_policy, self.noise) if self.augment_policy else images

    def consistency_view(self, images: torch.Tensor) -> torch.Tensor:
        """bCR's copy of ``images`` (Zhao et al. 2021): each flipped left to right at even odds and shifted by up to
        an eighth of its side. D is asked to score it as it scores the original, so it must judge faces by what a
        flip or a small shift leaves alone; unlike DiffAugment, G never sees these copies."""
        flip = torch.rand(images.shape[0], generator=self.noise, device=images.device) < 0.5
        return translation(torch.where(flip[:, None, None, None], images.flip(3), images), self.noise)

    def best_scored(self, fake_logits: torch.Tensor, step: int) -> torch.Tensor:
        """With ``top_k`` < 1, D's logits on only the fakes it scores most real (Sinha et al. 2020): the worst fakes'
        gradients point G at whatever D finds easiest to fix, not at better faces. The fraction kept starts at 1
        and shrinks by 0.99 every 100 updates (the paper's 0.99 an epoch, for epochs of ~100 updates) to
        ``top_k``, so early on, when every fake is bad, all of them train G."""
        if self.config.top_k >= 1:
            return fake_logits
        kept = max(self.config.top_k, TOP_K_SHRINK ** (step / 100))
        return fake_logits.flatten().topk(max(1, round(kept * fake_logits.shape[0]))).values

    def r1_penalty(self, real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """gamma/2 * E|grad_x D(x)|^2 on the real batch, times r1_every since it is applied only that often (lazy
        regularisation, as in StyleGAN2): it keeps D's surface flat around the real faces, so D cannot grow sharp
        decision boundaries there that give G useless gradients."""
        config = self.config
        gradient, = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
        return config.r1_gamma / 2 * gradient.float().pow(2).flatten(1).sum(1).mean() * config.r1_every


def set_learning_rates(optimizers: list[torch.optim.Optimizer], base: list[list[float]], progress: float,
                       decay: float) -> None:
    """With ``lr_decay`` f: full learning rates until 1 - f of the run, then linearly down to zero at its end.
    ``progress`` is the finished fraction of the run (of its steps, or of its time budget); ``base`` holds each
    optimiser's starting rate per parameter group."""
    factor = min(1.0, max(0.0, 1.0 - progress) / decay)
    for optimizer, rates in zip(optimizers, base):
        for group, lr in zip(optimizer.param_groups, rates):
            group["lr"] = lr * factor


def adam_optimizers(D: torch.nn.Module, G: torch.nn.Module, config, device: torch.device):
    """(d_optimizer, g_optimizer). Fused Adam (torch 2.4+ on the CPU) updates a network's weights in one kernel:
    with networks this small the optimiser is a visible share of a step, and side by side at batch 128 it trained
    10-20% more images/s."""
    adam = dict(betas=(config.beta1, config.beta2), fused=device.type in ("cpu", "cuda"))
    return (torch.optim.Adam(D.parameters(), lr=config.d_lr or config.lr, **adam),
            torch.optim.Adam(G.parameters(), lr=config.lr, **adam))


def decay_learning_rates(optimizers: list[torch.optim.Optimizer], base: list[list[float]], config, step: int,
                         total_steps: int, elapsed: float) -> None:
    """``set_learning_rates`` for how far the run is: by its steps, or by its time budget (``config.max_minutes``)
    when that is further on; nothing without ``config.lr_decay``."""
    if config.lr_decay > 0:
        progress = step / total_steps
        if config.max_minutes is not None:
            progress = max(progress, elapsed / (config.max_minutes * 60))
        set_learning_rates(optimizers, base, progress, config.lr_decay)
