"""Graders of training: the losses, the optimizers, the training step and what a training run returns."""
from __future__ import annotations

import copy
import inspect
import math

import torch
from torch import nn
from torch.nn import functional as F

from .common import accepts_second_argument, amplify_last_layer, as_float, call_learner, check, grading_device, passed

_LOGITS = (-3.0, -1.5, -0.5, 0.5, 1.5, 3.0)


def _loss_family(values: list[float]) -> tuple[str, float] | None:
    """Which of the allowed losses produced ``values`` at ``_LOGITS`` (a batch of identical logits each), and
    its target t: cross-entropy of the logits (softplus(x) - t x), least squares of the logits ((x - t)^2), or
    least squares of the probabilities ((sigmoid(x) - t)^2). Each family gives t from the difference of the loss
    at x and -x; the family is the one whose t reproduces every value. None when it is none of them."""
    x = torch.tensor(_LOGITS, dtype=torch.float64)
    loss = torch.tensor(values, dtype=torch.float64)
    half = len(_LOGITS) // 2  # _LOGITS holds -a, ..., +a: pair each x > 0 with -x
    a, diff = x[half:], loss[half:] - loss[:half].flip(0)
    p = torch.sigmoid(x)
    families = {
        "cross-entropy": ((1 - diff / a) / 2, lambda t: F.softplus(x) - t * x),
        "least squares": (-diff / (4 * a), lambda t: (x - t) ** 2),
        "least squares of sigmoid(D_out)": ((1 - diff / (2 * torch.sigmoid(a) - 1)) / 2, lambda t: (p - t) ** 2),
    }
    for family, (targets, model) in families.items():
        target = float(targets.median())
        if torch.allclose(model(target), loss, rtol=1e-3, atol=1e-4):
            return family, target
    return None


def _label(target: float) -> str:
    return f"{round(target, 3) + 0.0:.3f}"  # + 0.0 turns -0.0 into 0.0


def _probe_loss(loss_fn, name: str, todo: str) -> tuple[str, float]:
    device, call = grading_device(), name if "(" in name else f"{name}(D_out)"
    values = []
    for x in _LOGITS:
        D_out = torch.full((8, 1), x, device=device, requires_grad=True)
        loss = call_learner(call, loss_fn, D_out, todo=todo)
        check(torch.is_tensor(loss) and loss.numel() == 1, f"{call} returns a one-element tensor",
              f"{type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}",
              "average the loss over the batch (a mean) and return the tensor, not .item()")
        check(loss.requires_grad, f"{name} keeps the graph, so that backward() reaches D",
              "a result without gradient", "don't call .item(), .detach() or .data on the way")
        if x == 0.5:  # every allowed loss has a slope there
            grad, = torch.autograd.grad(loss.sum(), D_out)
            check(float(grad.abs().sum()) > 0, f"{name} that depends on D_out", "a zero gradient",
                  "compute the loss from D_out")
        values.append(as_float(loss))
    double = as_float(call_learner(call, loss_fn, torch.full((16, 1), _LOGITS[1], device=device)))
    check(math.isclose(double, values[1], rel_tol=1e-3, abs_tol=1e-5),
          f"{name} averaged over the batch (the same value for 8 and 16 equal logits)",
          f"{values[1]:.4f} for 8 logits, {double:.4f} for 16", "use a mean, not a sum")
    found = _loss_family(values)
    check(found is not None, f"{name} = cross-entropy or least squares of the logits, averaged over the batch",
          f"values {[round(v, 3) for v in values]} at logits {list(_LOGITS)}",
          "use nn.BCEWithLogitsLoss (D returns logits) or a least-squares loss, e.g. torch.mean((D_out - 1)**2)")
    return found


def test_losses(real_loss, fake_loss):
    """``real_loss`` and ``fake_loss``: cross-entropy on logits or least squares, averaged over the batch. The real
    target is 1, or anything in [0.8, 1] with label smoothing (on always, by default, or through a ``smooth``
    argument); the fake target is 0."""
    real_family, real_target = _probe_loss(real_loss, "real_loss", "write real_loss: the loss of D's logits "
                                                                   "against the label 'real' (1)")
    check(0.8 - 1e-3 <= real_target <= 1 + 1e-3, "real_loss with real images labelled 1 (0.8 to 1 with label "
          "smoothing)", f"label {_label(real_target)}", "real images are labelled 1 (or 0.9 with smoothing), fake 0")
    if accepts_second_argument(real_loss):
        smoothed = (lambda D_out: real_loss(D_out, smooth=True)) if "smooth" in _parameter_names(real_loss) \
            else (lambda D_out: real_loss(D_out, True))
        _, smooth_target = _probe_loss(smoothed, "real_loss(D_out, smooth=True)", "")
        check(0.8 - 1e-3 <= smooth_target <= 1 + 1e-3, "real_loss(D_out, smooth=True) with real labels in [0.8, 1]",
              f"label {_label(smooth_target)}", "with smooth=True the real labels are 0.9 (label smoothing)")
    fake_family, fake_target = _probe_loss(fake_loss, "fake_loss", "write fake_loss: the loss of D's logits "
                                                                   "against the label 'fake' (0)")
    low = -1 - 1e-3 if fake_family.startswith("least squares") else -1e-3
    check(low <= fake_target <= 0.2, "fake_loss with fake images labelled 0", f"label {_label(fake_target)}",
          "fake images are labelled 0 (real ones 1)")
    check(real_family == fake_family, "the same kind of loss for real and fake images",
          f"real_loss is {real_family}, fake_loss is {fake_family}", "use one loss for both")
    passed()


def _parameter_names(function) -> list[str]:
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return []


# ---------------------------------------------------------------- optimizers and the training step
def test_optimizers(d_optimizer, g_optimizer, D, G):
    """Each optimizer updates exactly its own network's parameters, with a sensible learning rate."""
    for name, optimizer, net, other in (("d_optimizer", d_optimizer, D, G), ("g_optimizer", g_optimizer, G, D)):
        net_name, other_name = ("D", "G") if net is D else ("G", "D")
        check(isinstance(optimizer, torch.optim.Optimizer), f"{name} a torch.optim optimizer",
              type(optimizer).__name__, f"{name} = optim.Adam({net_name}.parameters(), lr, betas=(beta1, beta2))")
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        mine, theirs = {id(p) for p in net.parameters()}, {id(p) for p in other.parameters()}
        check(not owned & theirs, f"{name} over {net_name}'s parameters only",
              f"{len(owned & theirs)} of {other_name}'s parameters", f"build {name} from {net_name}.parameters()")
        check(owned == mine, f"{name} over all {len(mine)} of {net_name}'s parameters",
              f"{len(owned & mine)} of them", f"pass {net_name}.parameters() (all of them) to {name}")
        for group in optimizer.param_groups:
            check(0 < group["lr"] <= 0.01, "a learning rate in (0, 0.01] (DCGAN uses 0.0002)",
                  f"{group['lr']}", "GANs diverge with large learning rates")
    passed()


def test_build_optimizers(build_optimizers, D, G):
    """``build_optimizers(D, G)`` returns ``(d_optimizer, g_optimizer)`` that pass ``test_optimizers``."""
    built = call_learner("build_optimizers(D, G)", build_optimizers, D, G,
                         todo="write build_optimizers: one optim.Adam over D.parameters(), one over G.parameters()")
    check(isinstance(built, (tuple, list)) and len(built) == 2, "(d_optimizer, g_optimizer)",
          f"{type(built).__name__}", "return d_optimizer, g_optimizer")
    test_optimizers(built[0], built[1], D, G)


def test_train_step(train_step, D, G, d_optimizer, g_optimizer, z_size: int, batch_size: int = 16):
    """``train_step(D, G, d_optimizer, g_optimizer, real_images, z)`` (real images in [0, 1]) runs one
    discriminator step and one generator step, moves both networks and returns two finite scalar losses.
    It runs on copies: your networks and optimizers are left as they were."""
    D, G, d_optimizer, g_optimizer = copy.deepcopy((D, G, d_optimizer, g_optimizer))
    device = next(D.parameters()).device
    g = torch.Generator().manual_seed(0)
    size = 32
    real = torch.rand(batch_size, 3, size, size, generator=g).to(device)
    z = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(device)
    d_before = [p.detach().clone() for p in D.parameters()]
    g_before = [p.detach().clone() for p in G.parameters()]
    out = call_learner("train_step(D, G, d_optimizer, g_optimizer, real_images, z)", train_step, D, G, d_optimizer,
                       g_optimizer, real, z,
                       todo="write train_step: a discriminator step on real and fake images, then a generator step, "
                            "returning (d_loss, g_loss)")
    check(isinstance(out, (tuple, list)) and len(out) in (2, 4), "(d_loss, g_loss), or (d_loss, g_loss, D(x), "
          "D(G(z)))", f"{type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""),
          "return d_loss, g_loss (optionally followed by D's mean probabilities on the real and the fake batch)")
    for name, value in zip(("D(x)", "D(G(z))"), out[2:]):
        check((torch.is_tensor(value) and value.numel() == 1) or isinstance(value, (int, float)),
              f"{name} a single number", f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}",
              f"return {name} as the mean of torch.sigmoid(logits) over the batch")
        check(0 <= as_float(value) <= 1, f"{name} a probability in [0, 1]", f"{as_float(value):.3f}",
              "apply torch.sigmoid to D's logits before taking the mean")
    for name, value in zip(("d_loss", "g_loss"), out):
        check((torch.is_tensor(value) and value.numel() == 1) or isinstance(value, (int, float)),
              f"{name} a single number", f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}",
              "return the scalar losses")
        check(math.isfinite(as_float(value)), f"a finite {name}", f"{as_float(value)}",
              "check the losses' targets and that D has no sigmoid")
    d_moved = any(not torch.equal(a, b.detach()) for a, b in zip(d_before, D.parameters()))
    g_moved = any(not torch.equal(a, b.detach()) for a, b in zip(g_before, G.parameters()))
    check(d_moved, "the discriminator step to change D", "D's weights unchanged",
          "call d_loss.backward() and then d_optimizer.step()")
    check(g_moved, "the generator step to change G", "G's weights unchanged",
          "call g_loss.backward() and then g_optimizer.step(), with g_loss computed from D(G(z))")
    passed()


# ---------------------------------------------------------------- results
def _batchnorm_weights(G) -> torch.Tensor | None:
    weights = [m.weight.detach().flatten().float().cpu() for m in G.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    return torch.cat(weights) if weights else None


def test_training_output(losses, samples, G=None):
    """``train`` returned finite (d_loss, g_loss) pairs and ``samples`` holds one batch of images in [-1, 1] per
    epoch that are not all the same. Pass the trained ``G`` too and a failure can name its cause."""
    check(len(losses) > 0, "recorded losses", "none", "append (d_loss.item(), g_loss.item()) while training")
    pairs = [tuple(pair) for pair in losses]
    check(all(len(p) == 2 for p in pairs), "(d_loss, g_loss) pairs", f"{pairs[0]!r}", "record both losses")
    flat = torch.tensor([[as_float(v) for v in p] for p in pairs], dtype=torch.float64)
    check(bool(torch.isfinite(flat).all()), "finite losses", "NaN or inf", "training diverged: lower the "
          "learning rate, check the losses' targets and that D has no sigmoid")
    check(len(samples) > 0, "one sample batch per epoch", "no samples", "generate from fixed_z after each epoch")
    blamed_on_G = False
    for i, batch in enumerate(samples):
        batch = batch.detach().float().cpu() if torch.is_tensor(batch) else torch.as_tensor(batch).float()
        check(batch.dim() == 4 and batch.shape[1] == 3, f"samples[{i}] of shape (n, 3, H, W)",
              f"{tuple(batch.shape)}", "store G(fixed_z) for each epoch")
        in_range = bool(batch.min() >= -1 and batch.max() <= 1)
        if not in_range and not blamed_on_G:
            # the generator itself draws outside [-1, 1] (no tanh): test_generator grades that, not this step
            blamed_on_G = G is not None and _lacks_tanh(G)
            if blamed_on_G:
                print(f"note: samples[{i}] lie outside [-1, 1] because the generator's own output does (no tanh at "
                      "its end): test_generator's finding, fix it there")
        check(in_range or blamed_on_G, f"samples[{i}] in [-1, 1]",
              f"range {batch.min():.3f}..{batch.max():.3f}", "store the generator's tanh output as it is")
        if batch.std(0).mean() > 1e-2:  # below 0.5% of the range, the faces look the same
            continue
        bn = _batchnorm_weights(G) if G is not None else None
        if bn is not None and float(bn.abs().mean()) < 0.2:
            hint = (f"G's BatchNorm weights average {float(bn.abs().mean()):.3f} in size, not about 1: "
                    "weights_init_normal must not draw BatchNorm weights from N(0, 0.02) (it squashes every "
                    "activation); initialise only Conv, ConvTranspose and Linear layers")
        elif len(pairs) < UPDATES_TO_JUDGE_COLLAPSE:
            print(f"note: after {len(pairs)} updates the samples are still alike; train longer before judging "
                  f"(collapse can be told apart from a slow start after about {UPDATES_TO_JUDGE_COLLAPSE} updates)")
            continue
        else:
            hint = ("use different latent vectors per sample; if they differ, G has collapsed: a BatchNorm "
                    "weight initialised near 0 (see weights_init_normal), a learning rate too high, or D winning "
                    "outright")
        check(False, f"samples[{i}] that differ from one another", "all samples (nearly) identical", hint)
    passed()


# a fresh generator's samples may still look alike after a handful of updates; before this many a run is too short
# to call it collapse (the BatchNorm diagnosis, a measured cause, holds at any length)
UPDATES_TO_JUDGE_COLLAPSE = 200


def _lacks_tanh(G) -> bool:
    """Whether G's output layer is unsquashed, by test_generator's own check: with its last layer scaled x1000 (a
    copy, in eval mode, so G itself is untouched) its images leave [-1, 1]. False when that can't be told."""
    try:
        linear = next(m for m in G.modules() if isinstance(m, nn.Linear))
        z = torch.rand(8, linear.in_features, device=next(G.parameters()).device) * 2 - 1
        with torch.no_grad():
            out = amplify_last_layer(G).eval()(z).float()
        return bool(out.min() < -1 or out.max() > 1)
    except Exception:  # noqa: BLE001 - a learner's G may fail in any way here; then no excuse is made
        return False
