"""The DCGAN networks, their weight initialisation and their losses.

Two families, both exactly the Udacity seed architectures at 32x32:

* ``seed4`` (seed 000): 4 stride-2 convs down to 2x2 then a linear logit; the generator mirrors it with a linear
  layer and 4 transposed convs. Convs carry no bias (BatchNorm follows, or the first layer is unnormalised).
* ``seed3`` (seed 001): 3 convs down to 4x4; its generator's transposed convs keep their bias.

``image_size=64`` adds one more stride-2 stage to each network (the DCGAN paper's shape), so the bottleneck keeps
its spatial size and the channel count doubles once more.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ARCHS, D_NORMS, IMAGE_SIZES, LOSSES

_BASE_STAGES = {"seed4": 4, "seed3": 3}  # stride-2 stages at 32x32


def _stages(arch: str, image_size: int) -> int:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: use one of {ARCHS}")
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image size {image_size} is not supported: use one of {IMAGE_SIZES}")
    return _BASE_STAGES[arch] + int(math.log2(image_size // 32))


def _block(layer: nn.Module, channels: int | None) -> nn.Sequential:
    """A conv or deconv, followed by BatchNorm when ``channels`` is given."""
    return nn.Sequential(layer, nn.BatchNorm2d(channels)) if channels else nn.Sequential(layer)


class Discriminator(nn.Module):
    """Maps images in [-1, 1] of shape (B, 3, S, S) to one unbounded real/fake logit each, shape (B, 1).

    ``norm="spectral"`` swaps the seed's BatchNorm for spectral normalisation of every layer (Miyato et al. 2018):
    each layer's largest singular value is held at 1, which bounds how sharply the discriminator can change; the
    convs then carry a bias, since no BatchNorm follows them. (In the 5-minute CPU budget of a retired quality bench
    it learned far slower than BatchNorm, so it is an option, not the default.)

    ``mbstd=True`` appends one feature map to the last conv's output, the minibatch standard deviation: how much the
    features vary across each group of images (see ``minibatch_stddev``)."""

    def __init__(self, conv_dim: int = 32, *, arch: str = "seed4", image_size: int = 32, norm: str = "batch",
                 mbstd: bool = False):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}: use one of {D_NORMS}")
        self.conv_dim, self.arch, self.image_size, self.norm, self.mbstd = conv_dim, arch, image_size, norm, mbstd
        spectral = norm == "spectral"
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda layer: layer)
        stages = _stages(arch, image_size)
        channels = 3
        for i in range(stages):
            out = conv_dim * 2 ** i
            conv = wrap(nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=spectral))
            setattr(self, f"conv{i + 1}", _block(conv, out if i > 0 and not spectral else None))
            channels = out
        self.n_convs = stages
        self.bottleneck = (channels, image_size >> stages)
        self.fc = wrap(nn.Linear((channels + mbstd) * self.bottleneck[1] ** 2, 1))

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        """``parts`` > 1: ``x`` stacks that many equal batches (the D step's reals and fakes), each normalised by
        BatchNorm on its own, exactly as if it went through alone, while each conv runs once over all of them: on
        the CPU fewer, larger convolution calls are faster."""
        for i in range(self.n_convs):
            conv, *norm = getattr(self, f"conv{i + 1}")
            x = conv(x)
            if norm:
                x = torch.cat([norm[0](part) for part in x.chunk(parts)]) if parts > 1 else norm[0](x)
            x = F.leaky_relu(x, 0.2)
        if self.mbstd:
            x = torch.cat([minibatch_stddev(part) for part in x.chunk(parts)]) if parts > 1 else minibatch_stddev(x)
        return self.fc(x.flatten(1))


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """``x`` (N, C, H, W) with one more channel: the standard deviation of each feature across a group of ``group``
    images, averaged over features and places, the same value all over each image of the group (Karras et al.
    2018). Real faces vary within a group; a generator that has collapsed onto a few looks gives itself away,
    and D can see it only through a feature that spans several images. Groups are images i, i + N/group, ...;
    a batch that ``group`` does not divide is one group."""
    n, c, h, w = x.shape
    size = group if n % group == 0 else n
    spread = x.float().reshape(size, -1, c, h, w).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
    return torch.cat([x, spread.to(x.dtype).repeat(size)[:, None, None, None].expand(n, 1, h, w)], 1)


class Generator(nn.Module):
    """Maps latent vectors (B, z_size) to images in [-1, 1] of shape (B, 3, S, S)."""

    def __init__(self, z_size: int = 100, conv_dim: int = 32, *, arch: str = "seed4", image_size: int = 32):
        super().__init__()
        self.z_size, self.conv_dim, self.arch, self.image_size = z_size, conv_dim, arch, image_size
        stages = _stages(arch, image_size)
        # seed3's transposed convs keep their bias, seed4's rely on the BatchNorm that follows them
        bias = arch == "seed3"
        channels = conv_dim * 2 ** (stages - 1)
        self.bottleneck = (channels, image_size >> stages)
        self.fc = nn.Linear(z_size, channels * self.bottleneck[1] ** 2)
        for i in range(stages):
            last = i == stages - 1
            out = 3 if last else channels // 2
            deconv = nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=bias)
            setattr(self, f"deconv{i + 1}", _block(deconv, None if last else out))
            channels = out
        self.n_deconvs = stages

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        channels, side = self.bottleneck
        x = self.fc(z).view(-1, channels, side, side)
        for i in range(self.n_deconvs - 1):
            x = F.relu(getattr(self, f"deconv{i + 1}")(x))
        return torch.tanh(getattr(self, f"deconv{self.n_deconvs}")(x))


def weights_init_normal(m: nn.Module) -> None:
    """DCGAN initialisation, used as ``net.apply(weights_init_normal)``: conv and linear weights ~ N(0, 0.02),
    biases 0. BatchNorm keeps PyTorch's own (weight 1, bias 0)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        # a spectrally normalised layer computes .weight from the stored original: initialise that one
        spectral = nn.utils.parametrize.is_parametrized(m, "weight")
        nn.init.normal_(m.parametrizations.weight.original if spectral else m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_network(d_conv_dim: int = 32, g_conv_dim: int = 32, z_size: int = 100, *, arch: str = "seed4",
                  image_size: int = 32, d_norm: str = "batch", d_mbstd: bool = False
                  ) -> tuple[Discriminator, Generator]:
    """Both networks, initialised (the Udacity ``build_network``)."""
    D = Discriminator(d_conv_dim, arch=arch, image_size=image_size, norm=d_norm, mbstd=d_mbstd)
    G = Generator(z_size, g_conv_dim, arch=arch, image_size=image_size)
    D.apply(weights_init_normal)
    G.apply(weights_init_normal)
    return D, G


def real_loss(D_out: torch.Tensor, smooth: bool | float = False) -> torch.Tensor:
    """BCE of logits against 'real': target 1, or 0.9 with ``smooth=True`` (or the float given)."""
    target = 0.9 if smooth is True else (1.0 if smooth is False else float(smooth))
    logits = D_out.float().squeeze()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def fake_loss(D_out: torch.Tensor) -> torch.Tensor:
    """BCE of logits against 'fake': target 0."""
    logits = D_out.float().squeeze()
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce",
                       real_label: float = 1.0) -> torch.Tensor:
    """The discriminator's loss: BCE (``real_loss + fake_loss``, real target ``real_label``) or the hinge loss
    mean(relu(1 - real)) + mean(relu(1 + fake)), which stops pushing on logits already beyond the margin."""
    if kind == "bce":
        return real_loss(real_logits, real_label) + fake_loss(fake_logits)
    if kind == "hinge":
        return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()
    raise ValueError(f"unknown loss {kind!r}: use one of {LOSSES}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """The generator's loss: non-saturating BCE (G wants D to call its fakes real) or, with hinge, -mean(logit)."""
    if kind == "bce":
        return real_loss(fake_logits)
    if kind == "hinge":
        return -fake_logits.float().mean()
    raise ValueError(f"unknown loss {kind!r}: use one of {LOSSES}")


def sample_latent(n: int, z_size: int, kind: str = "uniform", *, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Latent vectors: uniform in [-1, 1] (the Udacity recipe) or standard normal."""
    if kind == "uniform":
        return torch.rand(n, z_size, generator=generator, device=device) * 2 - 1
    if kind == "normal":
        return torch.randn(n, z_size, generator=generator, device=device)
    raise ValueError(f"unknown latent {kind!r}: use 'uniform' or 'normal'")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` latents from ``z0`` to ``z1`` (each of shape (z_size,)), by spherical interpolation, which keeps
    the vectors' length typical of the latent distribution instead of shrinking it midway as a straight line does."""
    t = torch.linspace(0, 1, steps)[:, None]
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.arccos((a * b).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega < 1e-4:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
