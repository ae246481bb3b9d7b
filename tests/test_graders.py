"""The graders pass the reference implementation and catch every planted bug with a helpful message."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import problem_unittests as graders
from facegan.data import get_dataloader, load_images, scale
from facegan.models import Discriminator, Generator, build_network, fake_loss, real_loss, weights_init_normal


def passes(capsys, grader, *args):
    grader(*args)
    assert capsys.readouterr().out.strip().endswith("Tests Passed")


def caught(grader, *args, says):
    with pytest.raises(AssertionError) as info:
        grader(*args)
    message = str(info.value)
    assert "expected:" in message and "found:" in message and "check:" in message
    assert says in message, message


def test_reference_implementation_passes(capsys):
    passes(capsys, graders.test_discriminator, Discriminator)
    passes(capsys, graders.test_generator, Generator)
    passes(capsys, graders.test_scale, scale)
    passes(capsys, graders.test_weights_init, weights_init_normal)
    passes(capsys, graders.test_losses, real_loss, fake_loss)
    passes(capsys, graders.test_get_dataloader, get_dataloader, "synthetic")
    D, G = build_network()
    passes(capsys, graders.test_optimizers, torch.optim.Adam(D.parameters(), 2e-4),
           torch.optim.Adam(G.parameters(), 2e-4), D, G)
    passes(capsys, graders.test_training_output, [(1.2, 0.7), (1.1, 0.9)], [torch.rand(16, 3, 32, 32) * 2 - 1])


# ---------------------------------------------------------------- planted bugs
class WrongShapeD(Discriminator):
    def forward(self, x):
        return super().forward(x).squeeze(1)


class SigmoidD(Discriminator):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class NoTanhG(Generator):
    def forward(self, z):
        return torch.atanh(super().forward(z).clamp(-0.999999, 0.999999))


class SigmoidG(Generator):
    def forward(self, z):
        return torch.sigmoid(torch.atanh(super().forward(z).clamp(-0.999999, 0.999999)))


class Upsamples64G(Generator):
    def forward(self, z):
        return F.interpolate(super().forward(z), scale_factor=2)


@pytest.mark.parametrize("grader, implementation, says", [
    (graders.test_discriminator, WrongShapeD, "output shape (50, 1)"),
    (graders.test_discriminator, SigmoidD, "remove the final sigmoid"),
    (graders.test_generator, NoTanhG, "values in [-1, 1]"),
    (graders.test_generator, SigmoidG, "apply torch.tanh"),
    (graders.test_generator, Upsamples64G, "output shape (50, 3, 32, 32)"),
])
def test_broken_networks_are_caught(grader, implementation, says):
    caught(grader, implementation, says=says)


def test_broken_scale_is_caught():
    caught(graders.test_scale, lambda x: x, says="range [-1, 1]")
    caught(graders.test_scale, lambda x: torch.tanh(x * 4 - 2) / torch.tanh(torch.tensor(2.0)), says="linear map")


def test_broken_init_is_caught():
    def std_one(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 1.0)

    def forgets_linear(m):
        if isinstance(m, nn.Conv2d):
            weights_init_normal(m)

    def keeps_bias(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def hits_batchnorm(m):
        weights_init_normal(m)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
    caught(graders.test_weights_init, std_one, says="std 0.02")
    caught(graders.test_weights_init, forgets_linear, says="ConvTranspose2d weights with std 0.02")
    caught(graders.test_weights_init, keeps_bias, says="biases set to 0")
    caught(graders.test_weights_init, hits_batchnorm, says="BatchNorm weights near 1")


def test_broken_losses_are_caught():
    flipped_real = lambda out, smooth=False: fake_loss(out)  # noqa: E731
    flipped_fake = lambda out: real_loss(out)  # noqa: E731
    no_smoothing = lambda out, smooth=False: real_loss(out)  # noqa: E731
    on_probabilities = lambda out, smooth=False: F.binary_cross_entropy(  # noqa: E731
        out.squeeze().clamp(0, 1), torch.full_like(out.squeeze(), 0.9 if smooth else 1.0))
    per_sample = lambda out, smooth=False: F.binary_cross_entropy_with_logits(  # noqa: E731
        out.squeeze(), torch.ones_like(out.squeeze()), reduction="none")
    caught(graders.test_losses, flipped_real, fake_loss, says="real images are labelled 1")
    caught(graders.test_losses, real_loss, flipped_fake, says="fake images are labelled 0")
    caught(graders.test_losses, no_smoothing, fake_loss, says="labels are 0.9")
    caught(graders.test_losses, on_probabilities, fake_loss, says="real_loss(D_out) =")
    caught(graders.test_losses, per_sample, fake_loss, says="returns a scalar tensor")


def test_broken_optimizers_are_caught():
    D, G = build_network()
    adam = torch.optim.Adam
    caught(graders.test_optimizers, adam(G.parameters(), 2e-4), adam(G.parameters(), 2e-4), D, G,
           says="d_optimizer over D's parameters only")
    caught(graders.test_optimizers, adam(D.parameters(), 2e-4), adam(list(G.parameters())[:2], 2e-4), D, G,
           says="g_optimizer over all")
    caught(graders.test_optimizers, adam(D.parameters(), 0.5), adam(G.parameters(), 2e-4), D, G,
           says="learning rate")


def test_broken_training_output_is_caught():
    good = [torch.rand(8, 3, 32, 32) * 2 - 1]
    caught(graders.test_training_output, [], good, says="recorded losses")
    caught(graders.test_training_output, [(1.0, float("nan"))], good, says="finite losses")
    caught(graders.test_training_output, [(1.0, 0.5)], [], says="one sample batch per epoch")
    caught(graders.test_training_output, [(1.0, 0.5)], [torch.rand(8, 3, 32, 32) * 3], says="in [-1, 1]")
    caught(graders.test_training_output, [(1.0, 0.5)], [torch.zeros(8, 3, 32, 32)], says="differ from one")


def test_broken_dataloaders_are_caught():
    images = load_images("synthetic", 32, synthetic_count=64)
    from facegan.data import FaceDataset
    dataset = FaceDataset(images)
    DataLoader = torch.utils.data.DataLoader
    caught(graders.test_dataloader, DataLoader(dataset, batch_size=8), 32, says="shuffle=True")
    caught(graders.test_dataloader, DataLoader(dataset, batch_size=8, shuffle=True), 64, says="(3, 64, 64)")
    signed = torch.utils.data.TensorDataset(images.float() / 127.5 - 1, torch.zeros(64))
    caught(graders.test_dataloader, DataLoader(signed, batch_size=8, shuffle=True), 32, says="values in [0, 1]")
    caught(graders.test_get_dataloader, lambda b, s, d: DataLoader(dataset, batch_size=4, shuffle=True),
           "synthetic", says="batches of 16")
