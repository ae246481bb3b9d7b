"""Graders for dlnd_face_generation.ipynb, compatible with the Udacity originals.

Each ``test_*`` checks one step of the notebook on your implementation. It prints ``Tests Passed`` when the step
is right, and otherwise raises AssertionError saying what was expected, what was found, and what to check.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check(condition: bool, expected: str, found: str, hint: str) -> None:
    if not condition:
        raise AssertionError(f"\n  expected: {expected}\n  found:    {found}\n  check:    {hint}")


def _passed() -> None:
    print("Tests Passed")


def _amplify_last_layer(model: nn.Module, factor: float = 1000.0) -> nn.Module:
    """A copy whose last parametrised layer is scaled up: raw outputs then reach far beyond [0, 1] / [-1, 1],
    unless a squashing function (sigmoid, tanh) sits after that layer."""
    model = copy.deepcopy(model)
    last = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))][-1]
    with torch.no_grad():
        for p in last.parameters(recurse=False):
            p.mul_(factor)
    return model


def _check_runs_on_the_available_device(model: nn.Module, inputs: torch.Tensor) -> None:
    device = _device()
    with torch.no_grad():
        out = model.to(device)(inputs.to(device))
    _check(out.device.type == device.type, f"output on {device}", f"{out.device}",
           "create tensors inside forward() on the input's device")


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def test_discriminator(Discriminator):
    """``Discriminator(10)`` maps (50, 3, 32, 32) images in [-1, 1] to (50, 1) unbounded logits, on any device."""
    batch_size, conv_dim = 50, 10
    D = Discriminator(conv_dim)
    _check(isinstance(D, nn.Module), "an nn.Module", type(D).__name__, "Discriminator must subclass nn.Module")
    x = torch.rand(batch_size, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out = D(x)
        big = _amplify_last_layer(D)(x)
    _check(tuple(out.shape) == (batch_size, 1), f"output shape {(batch_size, 1)}", f"{tuple(out.shape)}",
           "the last layer should produce ONE value per image: flatten the last conv and use nn.Linear(..., 1)")
    _check(_finite(out), "finite outputs", "NaN or inf", "check the forward pass for divisions or logs")
    _check(big.min() < -0.01 or big.max() > 1.01, "unbounded logits (no sigmoid at the end)",
           f"outputs stay in [0, 1] even with the last layer scaled x1000 (range {big.min():.3f}..{big.max():.3f})",
           "remove the final sigmoid: real_loss/fake_loss use BCEWithLogitsLoss, which applies it itself")
    _check_runs_on_the_available_device(D, x)
    _passed()


def test_generator(Generator):
    """``Generator(25, 10)`` maps (50, 25) latents to (50, 3, 32, 32) images in [-1, 1] (a tanh output)."""
    batch_size, z_size, conv_dim = 50, 25, 10
    G = Generator(z_size, conv_dim)
    _check(isinstance(G, nn.Module), "an nn.Module", type(G).__name__, "Generator must subclass nn.Module")
    z = torch.rand(batch_size, z_size) * 2 - 1
    with torch.no_grad():
        out = G(z)
        big = _amplify_last_layer(G)(z)
    _check(tuple(out.shape) == (batch_size, 3, 32, 32), f"output shape {(batch_size, 3, 32, 32)}",
           f"{tuple(out.shape)}", "reshape the fc output to (batch, channels, 4, 4) or (2, 2) and upsample x2 "
           "per transposed conv until 32x32, ending in 3 channels")
    _check(_finite(out), "finite outputs", "NaN or inf", "check the forward pass")
    _check(out.min() >= -1 and out.max() <= 1, "values in [-1, 1]", f"range {out.min():.3f}..{out.max():.3f}",
           "end the generator with torch.tanh so its images match real images scaled to [-1, 1]")
    _check(big.min() >= -1 and big.max() <= 1 and big.min() < -0.5, "a tanh output layer (range [-1, 1] "
           "whatever the last layer's scale)", f"range {big.min():.3f}..{big.max():.3f} with the last layer "
           "scaled x1000", "apply torch.tanh (not sigmoid, not nothing) to the last transposed conv's output")
    _check_runs_on_the_available_device(G, z)
    _passed()


def test_dataloader(loader, image_size: int = 32, batch_size: int | None = None):
    """A DataLoader of (images, labels): float images in [0, 1], shape (batch, 3, image_size, image_size),
    shuffled."""
    images, labels = next(iter(loader))
    expected_batch = batch_size or loader.batch_size
    _check(tuple(images.shape[1:]) == (3, image_size, image_size), f"images of shape (3, {image_size}, "
           f"{image_size})", f"{tuple(images.shape[1:])}", "resize to image_size and keep 3 RGB channels")
    _check(images.shape[0] == expected_batch, f"batches of {expected_batch}", f"{images.shape[0]}",
           "pass batch_size to the DataLoader")
    _check(images.dtype == torch.float32, "float32 images", f"{images.dtype}", "use transforms.ToTensor()")
    _check(images.min() >= 0 and images.max() <= 1, "values in [0, 1] (scale() maps them to [-1, 1] later)",
           f"range {images.min():.3f}..{images.max():.3f}", "don't normalise in the loader: ToTensor gives [0, 1]")
    _check(images.std() > 0.01, "varied pixel values", f"std {images.std():.4f}", "are the images blank?")
    _check(isinstance(loader.sampler, torch.utils.data.RandomSampler), "shuffle=True",
           type(loader.sampler).__name__, "pass shuffle=True to the DataLoader")
    _check(len(labels) == images.shape[0], "one label per image", f"{len(labels)} labels", "return (image, label)")
    _passed()


def test_get_dataloader(get_dataloader, data_dir, image_size: int = 32, batch_size: int = 16):
    """``get_dataloader(batch_size, image_size, data_dir)`` returns a loader that passes ``test_dataloader``."""
    loader = get_dataloader(batch_size, image_size, data_dir)
    test_dataloader(loader, image_size, batch_size)


def test_scale(scale):
    """``scale(x)`` maps [0, 1] linearly onto [-1, 1]."""
    x = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(2, 3, 4, 11)
    y = scale(x)
    _check(tuple(y.shape) == tuple(x.shape), f"shape {tuple(x.shape)} kept", f"{tuple(y.shape)}",
           "scale element-wise")
    _check(math.isclose(float(y.min()), -1, abs_tol=1e-5) and math.isclose(float(y.max()), 1, abs_tol=1e-5),
           "range [-1, 1]", f"range {float(y.min()):.3f}..{float(y.max()):.3f}",
           "x * (max - min) + min with feature_range=(-1, 1)")
    _check(torch.allclose(y[0, 0, 0], torch.linspace(-1, 1, 11), atol=1e-5), "a linear map (0.5 -> 0)",
           f"{[round(v, 3) for v in y[0, 0, 0].tolist()]}", "use a linear map, no clamping or squashing")
    _passed()


def test_weights_init(weights_init_normal):
    """Conv, transposed conv and linear weights ~ N(0, 0.02) with zero biases; BatchNorm left sensible."""
    torch.manual_seed(0)
    # small fan-ins, so PyTorch's default initialisation (std 1/sqrt(3 fan_in)) is far from 0.02
    net = nn.Sequential(nn.Conv2d(8, 64, 3), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 4, 4, bias=False),
                        nn.Linear(32, 256))
    net.apply(weights_init_normal)
    for layer in (net[0], net[2], net[3]):
        name = type(layer).__name__
        w = layer.weight.detach()
        _check(abs(float(w.std()) - 0.02) < 0.002, f"{name} weights with std 0.02", f"std {float(w.std()):.4f}",
               "the DCGAN paper uses a standard deviation of 0.02; match Conv, ConvTranspose and Linear by "
               "class name or isinstance")
        _check(abs(float(w.mean())) < 0.003, f"{name} weights with mean 0", f"mean {float(w.mean()):.4f}",
               "initialise with nn.init.normal_(m.weight, 0.0, 0.02)")
        if layer.bias is not None:
            bias = layer.bias.detach()
            _check(bool((bias == 0).all()), f"{name} biases set to 0", f"max |bias| {float(bias.abs().max()):.4f}", "nn.init.zeros_(m.bias) when a bias exists")
    bn = net[1].weight.detach()
    _check(abs(float(bn.mean()) - 1) < 0.01 and float(bn.std()) < 0.05,
           "BatchNorm weights near 1 (untouched, or N(1, 0.02))",
           f"mean {float(bn.mean()):.3f}, std {float(bn.std()):.3f}",
           "don't initialise BatchNorm like a conv: its scale must stay near 1")
    _passed()


def test_losses(real_loss, fake_loss):
    """BCE on logits: real target 1 (0.9 with smooth=True), fake target 0; scalar results."""
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    bce = nn.BCEWithLogitsLoss()
    target = lambda v: torch.full((4,), v)  # noqa: E731
    for name, got, want, hint in (
            ("real_loss(D_out)", real_loss(logits), bce(logits.squeeze(), target(1.0)),
             "real images are labelled 1 and D_out are logits: use nn.BCEWithLogitsLoss"),
            ("real_loss(D_out, smooth=True)", real_loss(logits, smooth=True), bce(logits.squeeze(), target(0.9)),
             "with smooth=True the real labels are 0.9 (label smoothing)"),
            ("fake_loss(D_out)", fake_loss(logits), bce(logits.squeeze(), target(0.0)),
             "fake images are labelled 0")):
        _check(torch.is_tensor(got) and got.dim() == 0, f"{name} returns a scalar tensor",
               f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))}", "average the loss over the batch")
        _check(torch.isclose(got.float(), want, atol=1e-4), f"{name} = {want:.4f}", f"{float(got):.4f}", hint)
    _check(float(real_loss(torch.full((4, 1), 20.0))) < 1e-3, "tiny real loss for confident 'real' logits",
           f"{float(real_loss(torch.full((4, 1), 20.0))):.4f}", "the loss must take logits, not probabilities")
    _passed()


def test_optimizers(d_optimizer, g_optimizer, D, G):
    """Each optimizer updates exactly its own network's parameters, with a sensible learning rate."""
    for name, optimizer, net, other in (("d_optimizer", d_optimizer, D, G), ("g_optimizer", g_optimizer, G, D)):
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        mine, theirs = {id(p) for p in net.parameters()}, {id(p) for p in other.parameters()}
        net_name, other_name = ("D", "G") if net is D else ("G", "D")
        _check(not owned & theirs, f"{name} over {net_name}'s parameters only",
               f"{len(owned & theirs)} of {other_name}'s parameters", f"build {name} from {net_name}.parameters()")
        _check(owned == mine, f"{name} over all {len(mine)} of {net_name}'s parameters",
               f"{len(owned & mine)} of them", f"pass {net_name}.parameters() (all of them) to {name}")
        for group in optimizer.param_groups:
            _check(0 < group["lr"] <= 0.01, "a learning rate in (0, 0.01] (DCGAN uses 0.0002)",
                   f"{group['lr']}", "GANs diverge with large learning rates")
    _passed()


def test_training_output(losses, samples):
    """``train`` returned finite (d_loss, g_loss) pairs and ``samples`` holds one batch of images in [-1, 1] per
    epoch that are not all the same."""
    _check(len(losses) > 0, "recorded losses", "none", "append (d_loss.item(), g_loss.item()) while training")
    pairs = [tuple(pair) for pair in losses]
    _check(all(len(p) == 2 for p in pairs), "(d_loss, g_loss) pairs", f"{pairs[0]!r}", "record both losses")
    flat = torch.tensor(pairs, dtype=torch.float64)
    _check(bool(torch.isfinite(flat).all()), "finite losses", "NaN or inf", "training diverged: lower the "
           "learning rate, check the losses' targets and that D has no sigmoid")
    _check(len(samples) > 0, "one sample batch per epoch", "no samples", "generate from fixed_z after each epoch")
    for i, batch in enumerate(samples):
        batch = torch.as_tensor(batch)
        _check(batch.dim() == 4 and batch.shape[1] == 3, f"samples[{i}] of shape (n, 3, H, W)",
               f"{tuple(batch.shape)}", "store G(fixed_z) for each epoch")
        _check(batch.min() >= -1 and batch.max() <= 1, f"samples[{i}] in [-1, 1]",
               f"range {batch.min():.3f}..{batch.max():.3f}", "store the generator's tanh output as it is")
        _check(batch.std(0).mean() > 1e-3, f"samples[{i}] that differ from one another",
               "all samples identical", "use different latent vectors per sample; G may have collapsed")
    _passed()
