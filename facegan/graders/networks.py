"""Graders of the networks: the Discriminator, the Generator and the weight initialisation."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .common import (
    all_finite,
    amplify_last_layer,
    build_model,
    call_learner,
    check,
    describe_error,
    grading_device,
    passed,
    spread,
)


def test_discriminator(Discriminator):
    """``Discriminator(10)`` maps (50, 3, 32, 32) images in [-1, 1] to (50, 1) unbounded logits that depend on
    the images, on any device."""
    batch_size, conv_dim = 50, 10
    todo = "write Discriminator.__init__ (the layers) and forward (images -> one logit per image)"
    D = build_model(Discriminator, (conv_dim,), "Discriminator", todo)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch_size, 3, 32, 32, generator=g) * 2 - 1).to(grading_device())
    other = (torch.rand(batch_size, 3, 32, 32, generator=g) * 2 - 1).to(grading_device())
    with torch.no_grad():
        out = call_learner("D(images)", D, x, todo=todo)
        check(torch.is_tensor(out), "a tensor of logits", type(out).__name__, "forward must return a tensor")
        check(tuple(out.shape) == (batch_size, 1), f"output shape {(batch_size, 1)}", f"{tuple(out.shape)}",
              "the last layer should produce ONE value per image: flatten the last conv and use "
              "nn.Linear(..., 1)")
        check(all_finite(out), "finite outputs", "NaN or inf", "check the forward pass for divisions or logs")
        check(out.device.type == x.device.type, f"output on {x.device.type}", f"{out.device}",
              "create tensors inside forward() on the input's device")
        check(spread(out) > 1e-6, "one logit per image that depends on the image (in training mode)",
              f"the same output {float(out[0]):.4f} for 50 different images",
              "D ignores its input: look for a Dropout(p=1.0) or a layer that zeroes the features before fc")
        D.eval()
        out_eval = call_learner("D(images) in eval mode", D, x)
        out_other = call_learner("D(images) in eval mode", D, other)
        D.train()
        check(spread(out_eval) > 1e-6 and not torch.allclose(out_eval, out_other),
              "logits that depend on the images (in eval mode)",
              "the same output for different images", "D must compute its logit from the input images")
        big = call_learner("D(images) with its last layer scaled", amplify_last_layer(D), x)
    check(big.min() < -0.01 or big.max() > 1.01, "unbounded logits (no sigmoid at the end)",
          f"outputs stay in [0, 1] even with the last layer scaled x1000 (range {big.min():.3f}..{big.max():.3f})",
          "remove the final sigmoid: the template's real_loss/fake_loss expect logits (BCEWithLogitsLoss applies "
          "the sigmoid itself, in a numerically stable way)")
    passed()


def test_generator(Generator):
    """``Generator(25, 10)`` maps (50, 25) latents to (50, 3, 32, 32) images in [-1, 1] (a tanh output) that are a
    function of ``z``."""
    batch_size, z_size, conv_dim = 50, 25, 10
    todo = "write Generator.__init__ (fc and transposed convs) and forward (z -> images in [-1, 1])"
    G = build_model(Generator, (z_size, conv_dim), "Generator", todo)
    g = torch.Generator().manual_seed(0)
    z = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(grading_device())
    other = (torch.rand(batch_size, z_size, generator=g) * 2 - 1).to(grading_device())
    with torch.no_grad():
        out = call_learner("G(z)", G, z, todo=todo)
        check(torch.is_tensor(out), "a tensor of images", type(out).__name__, "forward must return a tensor")
        check(tuple(out.shape) == (batch_size, 3, 32, 32), f"output shape {(batch_size, 3, 32, 32)}",
              f"{tuple(out.shape)}", "reshape the fc output to (batch, channels, 4, 4) or (2, 2) and upsample x2 "
              "per transposed conv until 32x32, ending in 3 channels")
        check(all_finite(out), "finite outputs", "NaN or inf", "check the forward pass")
        check(out.min() >= -1 and out.max() <= 1, "values in [-1, 1]", f"range {out.min():.3f}..{out.max():.3f}",
              "end the generator with torch.tanh so its images match real images scaled to [-1, 1]")
        G.eval()  # BatchNorm's running statistics and no dropout: G(z) must then be a fixed function of z
        first, again, moved = (call_learner("G(z) in eval mode", G, v) for v in (z, z, other))
        G.train()
        check(torch.allclose(first, again, atol=1e-5), "the same images for the same z (in eval mode)",
              f"images that differ by up to {float((first - again).abs().max()):.3f} for the same z",
              "G must be a function of z: use the z passed to forward, don't draw noise inside it")
        check(not torch.allclose(first, moved, atol=1e-6), "images that change with z",
              "the same images for different z", "G ignores its input: compute the images from z, starting "
                                                 "with self.fc(z)")
        big = call_learner("G(z) with its last layer scaled", amplify_last_layer(G), z)
    check(big.min() >= -1 and big.max() <= 1 and big.min() < -0.5, "a tanh output layer (range [-1, 1] "
          "whatever the last layer's scale)", f"range {big.min():.3f}..{big.max():.3f} with the last layer "
          "scaled x1000", "apply torch.tanh (not sigmoid, not nothing) to the last transposed conv's output")
    passed()


# ---------------------------------------------------------------- data


def test_weights_init(weights_init_normal):
    """Conv, transposed conv and linear weights ~ N(0, 0.02); biases set to 0 or left alone; BatchNorm left near
    a scale of 1."""
    torch.manual_seed(0)
    # small fan-ins, so PyTorch's default initialisation (std 1/sqrt(3 fan_in)) is far from 0.02
    net = nn.Sequential(nn.Conv2d(8, 64, 3), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 4, 4),
                        nn.Linear(32, 256))
    before = copy.deepcopy(net.state_dict())
    call_learner("net.apply(weights_init_normal)", net.apply, weights_init_normal,
                 todo="write weights_init_normal: N(0, 0.02) weights for Conv2d, ConvTranspose2d and Linear layers")
    for index in (0, 2, 3):
        layer, name = net[index], type(net[index]).__name__
        w = layer.weight.detach()
        untouched = torch.equal(w, before[f"{index}.weight"])
        check(not untouched, f"{name} weights drawn from N(0, 0.02)", "PyTorch's default initialisation, untouched",
              "match Conv, ConvTranspose and Linear layers (by class name or isinstance) and initialise them with "
              "nn.init.normal_(m.weight, 0.0, 0.02)")
        check(abs(float(w.std()) - 0.02) < 0.002, f"{name} weights with std 0.02", f"std {float(w.std()):.4f}",
              "the DCGAN paper uses a standard deviation of 0.02: nn.init.normal_(m.weight, 0.0, 0.02)")
        check(abs(float(w.mean())) < 0.003, f"{name} weights with mean 0", f"mean {float(w.mean()):.4f}",
              "initialise with nn.init.normal_(m.weight, 0.0, 0.02)")
        bias = layer.bias.detach()
        check(bool((bias == 0).all()) or torch.equal(bias, before[f"{index}.bias"]) or
              float(bias.abs().max()) <= 0.1, f"{name} biases set to 0 or left alone",
              f"biases up to {float(bias.abs().max()):.3f} in size",
              "the bias terms may be left alone or set to 0 (nn.init.zeros_(m.bias))")
    bn_weight, bn_bias = net[1].weight.detach(), net[1].bias.detach()
    check(abs(float(bn_weight.mean()) - 1) < 0.05 and float(bn_weight.std()) < 0.05,
          "BatchNorm weights near 1 (PyTorch's default, or N(1, 0.02))",
          f"mean {float(bn_weight.mean()):.3f}, std {float(bn_weight.std()):.3f}",
          "don't initialise BatchNorm like a conv: its weight scales the normalised features and must stay near "
          "1 (N(0, 0.02) shrinks every activation ~50x and the generator's samples come out nearly identical)")
    check(float(bn_bias.abs().max()) < 0.1, "BatchNorm biases near 0", f"max |bias| {float(bn_bias.abs().max()):.3f}",
          "leave BatchNorm's bias at 0")
    # layers built with bias=False (as in the seed networks) have m.bias = None
    bare = nn.Sequential(nn.Conv2d(8, 16, 3, bias=False), nn.ConvTranspose2d(16, 4, 4, bias=False))
    try:
        bare.apply(weights_init_normal)
        error = None
    except Exception as e:  # noqa: BLE001
        error = describe_error(e)
    check(error is None, "weights_init_normal to handle layers built with bias=False", f"it raised {error}",
          "such layers have m.bias = None: touch the bias only `if m.bias is not None`")
    passed()


# ---------------------------------------------------------------- losses
