"""The graders judged both ways: every correct solution the course allows passes (and passes Udacity's own two
tests), every planted bug is caught with a message that names its real cause, and no learner's exception escapes
as a raw traceback."""
import numpy as np
import pytest
import torch
import torch.optim as optim
from torch import nn
from torch.nn import functional as F

import problem_unittests as graders
from facegan.batches import FaceDataset, get_dataloader, scale
from facegan.data import load_images
from facegan.models import Discriminator, Generator, build_network, fake_loss, real_loss, weights_init_normal

train_on_gpu = torch.cuda.is_available()  # the Udacity template's global, used by some variants below


def passes(capsys, grader, *args):
    grader(*args)
    assert capsys.readouterr().out.strip().endswith("Tests Passed")


def caught(grader, *args, says):
    with pytest.raises(AssertionError) as info:
        grader(*args)
    message = str(info.value)
    assert "expected:" in message and "found:" in message and "check:" in message, message
    for text in [says] if isinstance(says, str) else says:
        assert text in message, message
    # the learner's own exception is reported, not chained into a second traceback
    assert info.value.__suppress_context__ or info.value.__context__ is None
    return message


def udacity_test_discriminator(Discriminator):
    """What Udacity's own grader checks: a (50, 1) output for a batch of (constant) images."""
    x = torch.from_numpy(np.random.randint(1, size=(50, 3, 32, 32)) * 2 - 1).float()
    assert Discriminator(10)(x).size() == (50, 1)


def udacity_test_generator(Generator):
    z = torch.from_numpy(np.random.uniform(-1, 1, size=(50, 25))).float()
    assert Generator(25, 10)(z).size() == (50, 3, 32, 32)


# ---------------------------------------------------------------- correct variants learners write
def conv(in_channels, out_channels, kernel_size=4, stride=2, padding=1, batch_norm=True):
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def deconv(in_channels, out_channels, kernel_size=4, stride=2, padding=1, batch_norm=True):
    layers = [nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class TemplateD(nn.Module):
    """The Udacity template's shape: 3 convs to 4x4, view() to a linear layer."""

    def __init__(self, conv_dim):
        super().__init__()
        self.conv_dim = conv_dim
        self.conv1 = conv(3, conv_dim, batch_norm=False)
        self.conv2 = conv(conv_dim, conv_dim * 2)
        self.conv3 = conv(conv_dim * 2, conv_dim * 4)
        self.fc = nn.Linear(conv_dim * 4 * 4 * 4, 1)

    def forward(self, x):
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = F.leaky_relu(self.conv2(out), 0.2)
        out = F.leaky_relu(self.conv3(out), 0.2)
        return self.fc(out.view(-1, self.conv_dim * 4 * 4 * 4))


class SequentialD(nn.Module):
    """nn.Sequential, LeakyReLU modules, dropout, a conv to one logit at the end."""

    def __init__(self, conv_dim=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Conv2d(conv_dim, conv_dim * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(conv_dim * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(conv_dim * 2, conv_dim * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(conv_dim * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(conv_dim * 4, 1, 4, 1, 0))

    def forward(self, x):
        return self.main(x).view(-1, 1)


class TemplateG(nn.Module):
    """The template's generator: fc to 4x4, three transposed convs, nn.Tanh-free torch.tanh, train_on_gpu."""

    def __init__(self, z_size, conv_dim=32):
        super().__init__()
        self.conv_dim = conv_dim
        self.fc = nn.Linear(z_size, conv_dim * 4 * 4 * 4)
        self.t_conv1 = deconv(conv_dim * 4, conv_dim * 2)
        self.t_conv2 = deconv(conv_dim * 2, conv_dim)
        self.t_conv3 = deconv(conv_dim, 3, batch_norm=False)

    def forward(self, x):
        out = self.fc(x).view(-1, self.conv_dim * 4, 4, 4)
        out = F.relu(self.t_conv1(out))
        out = F.relu(self.t_conv2(out))
        return torch.tanh(self.t_conv3(out))


class TutorialG(nn.Module):
    """The PyTorch DCGAN tutorial's style: z as a 1x1 map, nn.Tanh, an upsampling conv layer."""

    def __init__(self, z_size, conv_dim=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_size, conv_dim * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(conv_dim * 4), nn.ReLU(True),
            nn.Upsample(scale_factor=2), nn.Conv2d(conv_dim * 4, conv_dim * 2, 3, 1, 1), nn.ReLU(True),
            nn.ConvTranspose2d(conv_dim * 2, conv_dim, 4, 2, 1), nn.ReLU(True),
            nn.ConvTranspose2d(conv_dim, 3, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.net(z.view(z.size(0), -1, 1, 1))


@pytest.mark.parametrize("D", [Discriminator, TemplateD, SequentialD])
def test_correct_discriminators_pass_ours_and_udacitys(capsys, D):
    passes(capsys, graders.test_discriminator, D)
    udacity_test_discriminator(D)


@pytest.mark.parametrize("G", [Generator, TemplateG, TutorialG])
def test_correct_generators_pass_ours_and_udacitys(capsys, G):
    passes(capsys, graders.test_generator, G)
    udacity_test_generator(G)


def scale_template(x, feature_range=(-1, 1)):
    min, max = feature_range  # noqa: A001 - as learners write it
    return x * (max - min) + min


@pytest.mark.parametrize("scale_fn", [
    scale, scale_template,
    lambda x, feature_range=(-1, 1): feature_range[0] + x * (feature_range[1] - feature_range[0]),
    lambda x: x * 2 - 1,  # no feature_range argument at all: right for the one range it can be asked
])
def test_correct_scales_pass(capsys, scale_fn):
    passes(capsys, graders.test_scale, scale_fn)


def init_by_class_name(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1 or classname.find("Linear") != -1:
        m.weight.data.normal_(0.0, 0.02)
        if hasattr(m, "bias") and m.bias is not None:
            m.bias.data.zero_()


def init_leaving_biases(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)


def init_batchnorm_like_the_paper(m):
    init_by_class_name(m)
    if isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def init_with_small_biases(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.normal_(m.bias, 0.0, 0.02)


@pytest.mark.parametrize("init", [weights_init_normal, init_by_class_name, init_leaving_biases,
                                  init_batchnorm_like_the_paper, init_with_small_biases])
def test_correct_initialisations_pass(capsys, init):
    passes(capsys, graders.test_weights_init, init)


def template_real_loss(D_out, smooth=False):
    batch_size = D_out.size(0)
    labels = torch.ones(batch_size) * (0.9 if smooth else 1.0)
    if train_on_gpu:
        labels = labels.cuda()
    return nn.BCEWithLogitsLoss()(D_out.squeeze(), labels)


def template_fake_loss(D_out):
    labels = torch.zeros(D_out.size(0))
    if train_on_gpu:
        labels = labels.cuda()
    return nn.BCEWithLogitsLoss()(D_out.squeeze(), labels)


def real_loss_no_smooth_argument(D_out):
    return nn.BCEWithLogitsLoss()(D_out.squeeze(), torch.ones(D_out.size(0), device=D_out.device))


def real_loss_always_smoothed(D_out):
    return nn.BCEWithLogitsLoss()(D_out.squeeze(), torch.full((D_out.size(0),), 0.9, device=D_out.device))


def real_loss_smooth_by_default(D_out, smooth=True):
    labels = torch.ones_like(D_out) * (0.9 if smooth else 1.0)
    return F.binary_cross_entropy_with_logits(D_out, labels)


def real_loss_smooth_ignored(D_out, smooth=False):
    return F.binary_cross_entropy_with_logits(D_out, torch.ones_like(D_out))


def real_loss_random_smoothing(D_out, smooth=False):
    labels = torch.full_like(D_out, 0.85 if smooth else 1.0)
    return F.binary_cross_entropy_with_logits(D_out, labels)


def lsgan_real(D_out, smooth=False):
    return torch.mean((D_out - 1) ** 2)


def lsgan_fake(D_out):
    return torch.mean(D_out ** 2)


def mse_real(D_out):
    return nn.MSELoss()(D_out.squeeze(), torch.ones(D_out.size(0), device=D_out.device))


def mse_fake(D_out):
    return nn.MSELoss()(D_out.squeeze(), torch.zeros(D_out.size(0), device=D_out.device))


def lsgan_minus_one_fake(D_out):  # the LSGAN paper's a = -1, b = 1 coding
    return torch.mean((D_out + 1) ** 2)


def bce_after_sigmoid_real(D_out, smooth=False):
    return nn.BCELoss()(torch.sigmoid(D_out).squeeze(), torch.full((D_out.size(0),), 0.9 if smooth else 1.0,
                                                                   device=D_out.device))


def bce_after_sigmoid_fake(D_out):
    return nn.BCELoss()(torch.sigmoid(D_out).squeeze(), torch.zeros(D_out.size(0), device=D_out.device))


@pytest.mark.parametrize("real, fake", [
    (real_loss, fake_loss), (template_real_loss, template_fake_loss),
    (real_loss_no_smooth_argument, template_fake_loss), (real_loss_always_smoothed, template_fake_loss),
    (real_loss_smooth_by_default, fake_loss), (real_loss_smooth_ignored, fake_loss),
    (real_loss_random_smoothing, fake_loss), (lsgan_real, lsgan_fake), (mse_real, mse_fake),
    (lsgan_real, lsgan_minus_one_fake), (bce_after_sigmoid_real, bce_after_sigmoid_fake),
])
def test_correct_losses_pass(capsys, real, fake):
    passes(capsys, graders.test_losses, real, fake)


@pytest.mark.parametrize("make", [
    lambda D, G: (optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)), optim.Adam(G.parameters(), 2e-4)),
    lambda D, G: (optim.Adam(D.parameters(), 4e-4), optim.Adam(G.parameters(), 1e-4, betas=(0.0, 0.99))),
    lambda D, G: (optim.SGD(D.parameters(), 1e-3), optim.RMSprop(G.parameters(), 5e-5)),
    lambda D, G: (optim.Adam(D.parameters(), 2e-4, fused=True), optim.Adam(G.parameters(), 2e-4, fused=True)),
])
def test_correct_optimizers_pass(capsys, make):
    D, G = build_network()
    passes(capsys, graders.test_optimizers, *make(D, G), D, G)
    passes(capsys, graders.test_build_optimizers, make, D, G)


def reference_step(D, G, d_optimizer, g_optimizer, real_images, z):
    """A correct step; returns the losses and D's logits on the real and the fake batch."""
    real_logits, fake_logits = D(scale(real_images)), D(G(z).detach())
    d_loss = real_loss(real_logits, smooth=True) + fake_loss(fake_logits)
    d_optimizer.zero_grad()
    d_loss.backward()
    d_optimizer.step()
    g_loss = real_loss(D(G(z)))
    g_optimizer.zero_grad()
    g_loss.backward()
    g_optimizer.step()
    return d_loss, g_loss, real_logits, fake_logits


def step_reference(D, G, d_optimizer, g_optimizer, real_images, z):
    """The losses as Python numbers."""
    d_loss, g_loss, _, _ = reference_step(D, G, d_optimizer, g_optimizer, real_images, z)
    return d_loss.item(), g_loss.item()


def step_template(D, G, d_optimizer, g_optimizer, real_images, z):
    """The Udacity loop's body: fresh z for each network, losses as tensors."""
    real_images = scale_template(real_images)
    d_optimizer.zero_grad()
    d_real = real_loss_no_smooth_argument(D(real_images))
    fake = G(torch.from_numpy(np.random.uniform(-1, 1, size=z.shape)).float())
    d_loss = d_real + template_fake_loss(D(fake))
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    fake = G(torch.from_numpy(np.random.uniform(-1, 1, size=z.shape)).float())
    g_loss = real_loss_no_smooth_argument(D(fake))
    g_loss.backward()
    g_optimizer.step()
    return d_loss, g_loss


def step_reporting_D(D, G, d_optimizer, g_optimizer, real_images, z):
    """The notebook's solution: the two losses, then D(x) and D(G(z)), D's mean probabilities."""
    d_loss, g_loss, real_logits, fake_logits = reference_step(D, G, d_optimizer, g_optimizer, real_images, z)
    return d_loss, g_loss, torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()


@pytest.mark.parametrize("step", [step_reference, step_template, step_reporting_D])
def test_correct_training_steps_pass_and_leave_the_networks_alone(capsys, step):
    D, G = build_network(8, 8, 16)
    d_optimizer, g_optimizer = optim.Adam(D.parameters(), 2e-4), optim.Adam(G.parameters(), 2e-4)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    passes(capsys, graders.test_train_step, step, D, G, d_optimizer, g_optimizer, 16)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert not d_optimizer.state and not g_optimizer.state


@pytest.mark.parametrize("losses, samples", [
    ([(1.2, 0.7), (1.1, 0.9)], [torch.rand(16, 3, 32, 32) * 2 - 1]),
    ([[1.2, 0.7]], [np.random.uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)]),
    (np.array([[1.2, 0.7], [1.0, 0.8]]), [(torch.rand(8, 3, 32, 32) * 2 - 1).requires_grad_()]),
    ([(torch.tensor(1.2), torch.tensor(0.7))], [torch.rand(8, 3, 64, 64) * 2 - 1]),
])
def test_correct_training_outputs_pass(capsys, losses, samples):
    passes(capsys, graders.test_training_output, losses, samples)


def test_reference_data_pipeline_passes(capsys):
    passes(capsys, graders.test_get_dataloader, get_dataloader, "synthetic")


def test_imagefolder_dataloader_passes(capsys, tmp_path):
    from torchvision import datasets, transforms
    from conftest import write_images
    write_images(tmp_path / "faces" / "celeba", 20)
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(tmp_path / "faces"), transforms.Compose([transforms.Resize(32),
                                                                          transforms.ToTensor()])),
        batch_size=8, shuffle=True)
    passes(capsys, graders.test_dataloader, loader, 32)


# ---------------------------------------------------------------- planted bugs
class WrongShapeD(Discriminator):
    def forward(self, x):
        return super().forward(x).squeeze(1)


class SigmoidD(Discriminator):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class BlindD(Discriminator):
    """Dropout(p=1.0) before the last layer: in training mode the logit no longer depends on the image."""

    def forward(self, x):
        for i in range(self.n_convs):
            x = F.leaky_relu(getattr(self, f"conv{i + 1}")(x), 0.2)
        return self.fc(F.dropout(x.flatten(1), 1.0, self.training))


class ConstantD(Discriminator):
    def forward(self, x):
        return self.fc(torch.zeros(x.shape[0], self.fc.in_features, device=x.device))


class BadFlattenD(Discriminator):
    def forward(self, x):
        for i in range(self.n_convs):
            x = F.leaky_relu(getattr(self, f"conv{i + 1}")(x), 0.2)
        return self.fc(x.view(-1, 640))


class CudaD(Discriminator):
    def forward(self, x):
        return super().forward(x.cuda())


class UnwrittenD(nn.Module):
    def __init__(self, conv_dim):
        super().__init__()
        raise NotImplementedError()


class NoTanhG(Generator):
    def forward(self, z):
        return torch.atanh(super().forward(z).clamp(-0.999999, 0.999999))


class SigmoidG(Generator):
    def forward(self, z):
        return torch.sigmoid(torch.atanh(super().forward(z).clamp(-0.999999, 0.999999)))


class Upsamples64G(Generator):
    def forward(self, z):
        return F.interpolate(super().forward(z), scale_factor=2)


class OwnNoiseG(Generator):
    """Draws its own latent vectors instead of using z."""

    def forward(self, z):
        return super().forward(torch.rand_like(z) * 2 - 1)


class IgnoresZG(Generator):
    def forward(self, z):
        return super().forward(torch.zeros_like(z))


class UnwrittenForwardG(Generator):
    def forward(self, z):
        raise NotImplementedError()


class No4dG(Generator):
    def forward(self, z):
        return torch.tanh(self.deconv1(self.fc(z)))


cuda_only = pytest.mark.skipif(torch.cuda.is_available(), reason="a .cuda() call works where there is a GPU")


@pytest.mark.parametrize("grader, implementation, says", [
    (graders.test_discriminator, WrongShapeD, "output shape (50, 1)"),
    (graders.test_discriminator, SigmoidD, ["remove the final sigmoid", "expect logits"]),
    (graders.test_discriminator, BlindD, ["depends on the image", "Dropout(p=1.0)"]),
    (graders.test_discriminator, ConstantD, "depends on the image"),
    (graders.test_discriminator, BadFlattenD, ["D(images) to run", "RuntimeError", "in_features"]),
    pytest.param(graders.test_discriminator, CudaD, ["machine without a GPU", "train_on_gpu"], marks=cuda_only),
    (graders.test_discriminator, UnwrittenD, ["not implemented yet", "write Discriminator.__init__"]),
    (graders.test_generator, NoTanhG, "values in [-1, 1]"),
    (graders.test_generator, SigmoidG, "apply torch.tanh"),
    (graders.test_generator, Upsamples64G, "output shape (50, 3, 32, 32)"),
    (graders.test_generator, OwnNoiseG, ["the same images for the same z", "don't draw noise inside"]),
    (graders.test_generator, IgnoresZG, ["images that change with z", "G ignores its input"]),
    (graders.test_generator, UnwrittenForwardG, ["not implemented yet", "forward"]),
    (graders.test_generator, No4dG, ["G(z) to run", "reshape the fc output"]),
])
def test_broken_networks_are_caught(grader, implementation, says):
    caught(grader, implementation, says=says)


def test_broken_scales_are_caught():
    caught(graders.test_scale, lambda x: x, says="range [-1, 1]")
    caught(graders.test_scale, lambda x: torch.tanh(x * 4 - 2) / torch.tanh(torch.tensor(2.0)), says="linear map")
    min_max = lambda x, feature_range=(-1, 1): (x - x.min()) / (x.max() - x.min()) * 2 - 1  # noqa: E731
    caught(graders.test_scale, min_max, says=["the same map for every batch", "don't use the batch's own min"])
    hard_coded = lambda x, feature_range=(-1, 1): x * 2 - 1  # noqa: E731
    caught(graders.test_scale, hard_coded, says=["feature_range=(0, 1)", "instead of hard-coding"])

    def unwritten(x, feature_range=(-1, 1)):
        raise NotImplementedError()
    caught(graders.test_scale, unwritten, says=["not implemented yet", "x * (max - min) + min"])


def test_broken_inits_are_caught():
    def std_one(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 1.0)

    def forgets_transposed_and_linear(m):
        if type(m) is nn.Conv2d:
            weights_init_normal(m)

    def forgets_linear(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weights_init_normal(m)

    def hits_batchnorm(m):
        weights_init_normal(m)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def does_nothing(m):
        pass

    def large_biases(m):
        weights_init_normal(m)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.bias is not None:
            nn.init.constant_(m.bias, 1.0)

    def unwritten(m):
        raise NotImplementedError()
    caught(graders.test_weights_init, std_one, says="std 0.02")
    caught(graders.test_weights_init, forgets_transposed_and_linear,
           says=["ConvTranspose2d weights drawn from N(0, 0.02)", "default initialisation, untouched"])
    caught(graders.test_weights_init, forgets_linear, says="Linear weights drawn from N(0, 0.02)")
    caught(graders.test_weights_init, hits_batchnorm, says=["BatchNorm weights near 1", "N(0, 0.02) shrinks"])
    caught(graders.test_weights_init, does_nothing, says="untouched")
    caught(graders.test_weights_init, large_biases, says="biases set to 0 or left alone")
    caught(graders.test_weights_init, unwritten, says=["not implemented yet", "N(0, 0.02)"])


def test_an_init_that_crashes_on_bias_free_layers_is_named():
    def assumes_a_bias(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.weight.data.normal_(0.0, 0.02)
            m.bias.data.fill_(0)
    caught(graders.test_weights_init, assumes_a_bias, says=["bias=False", "if m.bias is not None"])


def test_broken_losses_are_caught():
    flipped_real = lambda out, smooth=False: fake_loss(out)  # noqa: E731
    flipped_fake = lambda out: real_loss(out)  # noqa: E731
    too_smooth = lambda out, smooth=False: real_loss(out, 0.5)  # noqa: E731
    smooth_wrong = lambda out, smooth=False: real_loss(out, 0.6 if smooth else 1.0)  # noqa: E731
    bce_on_logits = lambda out: nn.BCELoss()(out.squeeze(), torch.ones(out.size(0)))  # noqa: E731
    per_sample = lambda out, smooth=False: F.binary_cross_entropy_with_logits(  # noqa: E731
        out.squeeze(), torch.ones_like(out.squeeze()), reduction="none")
    summed = lambda out: F.binary_cross_entropy_with_logits(  # noqa: E731
        out, torch.ones_like(out), reduction="sum")
    as_number = lambda out: real_loss(out).item()  # noqa: E731
    detached = lambda out: real_loss(out.detach())  # noqa: E731
    unsqueezed_labels = lambda out: nn.BCEWithLogitsLoss()(out, torch.ones(out.size(0)))  # noqa: E731
    hinge = lambda out: F.relu(1 - out).mean()  # noqa: E731
    cuda_labels = lambda out: nn.BCEWithLogitsLoss()(out.squeeze(), torch.ones(out.size(0)).cuda())  # noqa: E731

    def unwritten(out):
        raise NotImplementedError()
    caught(graders.test_losses, flipped_real, fake_loss, says=["real images labelled 1", "label 0.000"])
    caught(graders.test_losses, real_loss, flipped_fake, says=["fake images labelled 0", "label 1.000"])
    caught(graders.test_losses, too_smooth, fake_loss, says="label 0.500")
    caught(graders.test_losses, smooth_wrong, fake_loss, says=["smooth=True", "label 0.600"])
    caught(graders.test_losses, bce_on_logits, fake_loss, says=["should be between 0 and 1",
                                                                "use nn.BCEWithLogitsLoss"])
    caught(graders.test_losses, per_sample, fake_loss, says="returns a one-element tensor")
    caught(graders.test_losses, summed, fake_loss, says="use a mean, not a sum")
    caught(graders.test_losses, as_number, fake_loss, says="not .item()")
    caught(graders.test_losses, detached, fake_loss, says="keeps the graph")
    caught(graders.test_losses, unsqueezed_labels, fake_loss, says=["ValueError", "squeeze it to (batch,)"])
    caught(graders.test_losses, hinge, fake_loss, says="cross-entropy or least squares")
    caught(graders.test_losses, lsgan_real, fake_loss, says="the same kind of loss")
    caught(graders.test_losses, unwritten, fake_loss, says=["not implemented yet", "write real_loss"])
    if not torch.cuda.is_available():
        caught(graders.test_losses, cuda_labels, fake_loss, says=["machine without a GPU", "train_on_gpu"])


def test_broken_optimizers_are_caught():
    D, G = build_network()
    adam = optim.Adam
    caught(graders.test_optimizers, adam(G.parameters(), 2e-4), adam(G.parameters(), 2e-4), D, G,
           says="d_optimizer over D's parameters only")
    caught(graders.test_optimizers, adam(D.parameters(), 2e-4), adam(list(G.parameters())[:2], 2e-4), D, G,
           says="g_optimizer over all")
    caught(graders.test_optimizers, adam(D.parameters(), 0.5), adam(G.parameters(), 2e-4), D, G,
           says="learning rate")
    caught(graders.test_optimizers, D.parameters(), adam(G.parameters(), 2e-4), D, G, says="torch.optim optimizer")
    caught(graders.test_build_optimizers, lambda D, G: adam(D.parameters()), D, G,
           says="(d_optimizer, g_optimizer)")

    def unwritten(D, G):
        raise NotImplementedError()
    caught(graders.test_build_optimizers, unwritten, D, G, says=["not implemented yet", "optim.Adam"])


def test_broken_training_steps_are_caught():
    D, G = build_network(8, 8, 16)
    optimizers = optim.Adam(D.parameters(), 2e-4), optim.Adam(G.parameters(), 2e-4)

    def forgets_the_generator(D, G, d_optimizer, g_optimizer, real_images, z):
        d_loss = real_loss(D(scale(real_images))) + fake_loss(D(G(z).detach()))
        d_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()
        return d_loss, real_loss(D(G(z)))

    def steps_the_wrong_optimizer(D, G, d_optimizer, g_optimizer, real_images, z):
        g_loss = real_loss(D(G(z)))
        d_optimizer.zero_grad()
        g_loss.backward()
        d_optimizer.step()
        return g_loss, g_loss

    def returns_one_loss(D, G, d_optimizer, g_optimizer, real_images, z):
        step_reference(D, G, d_optimizer, g_optimizer, real_images, z)
        return 1.0

    def reports_logits(D, G, d_optimizer, g_optimizer, real_images, z):
        d_loss, g_loss, _, _ = step_reporting_D(D, G, d_optimizer, g_optimizer, real_images, z)
        return d_loss, g_loss, D(scale(real_images)).mean() - 5, D(G(z)).mean() - 5  # logits, not probabilities

    def returns_three(D, G, d_optimizer, g_optimizer, real_images, z):
        return step_reporting_D(D, G, d_optimizer, g_optimizer, real_images, z)[:3]

    def unwritten(D, G, d_optimizer, g_optimizer, real_images, z):
        raise NotImplementedError()
    caught(graders.test_train_step, reports_logits, D, G, *optimizers, 16, says=["D(x) a probability", "sigmoid"])
    caught(graders.test_train_step, returns_three, D, G, *optimizers, 16, says="(d_loss, g_loss, D(x), D(G(z)))")
    caught(graders.test_train_step, forgets_the_generator, D, G, *optimizers, 16,
           says=["change G", "g_optimizer.step()"])
    caught(graders.test_train_step, steps_the_wrong_optimizer, D, G, *optimizers, 16, says="change G")
    caught(graders.test_train_step, returns_one_loss, D, G, *optimizers, 16, says="(d_loss, g_loss)")
    caught(graders.test_train_step, unwritten, D, G, *optimizers, 16, says=["not implemented yet", "train_step"])


def test_broken_training_output_is_caught():
    good = [torch.rand(8, 3, 32, 32) * 2 - 1]
    caught(graders.test_training_output, [], good, says="recorded losses")
    caught(graders.test_training_output, [(1.0, float("nan"))], good, says="finite losses")
    caught(graders.test_training_output, [(1.0, 0.5)], [], says="one sample batch per epoch")
    caught(graders.test_training_output, [(1.0, 0.5)], [torch.rand(8, 3, 32, 32) * 3], says="in [-1, 1]")
    long_run = [(1.0, 0.5)] * graders.UPDATES_TO_JUDGE_COLLAPSE
    caught(graders.test_training_output, long_run, [torch.zeros(8, 3, 32, 32)], says="differ from one")


def test_identical_samples_after_a_batchnorm_init_near_zero_name_the_init():
    """BatchNorm weights drawn from N(0, 0.02) shrink every activation: G's samples come out (nearly) the same.
    The grader, given G, says so instead of only 'collapsed'."""
    torch.manual_seed(0)
    G = Generator(100, 32)

    def hits_batchnorm(m):
        weights_init_normal(m)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
    G.apply(hits_batchnorm)
    with torch.no_grad():
        samples = [G(torch.rand(16, 100) * 2 - 1)]
    assert samples[0].std(0).mean() < 1e-2  # the failure is real, not staged
    caught(graders.test_training_output, [(1.0, 0.5)], samples, G,
           says=["BatchNorm weights average", "must not draw BatchNorm weights from N(0, 0.02)"])
    healthy = Generator(100, 32).apply(weights_init_normal)
    long_run = [(1.0, 0.5)] * graders.UPDATES_TO_JUDGE_COLLAPSE
    caught(graders.test_training_output, long_run, [torch.zeros(4, 3, 32, 32)], healthy, says="G has collapsed")


def test_alike_samples_after_a_short_run_are_not_called_collapse(capsys):
    """A handful of updates is too few to tell collapse from a slow start: the grader says so and passes; the same
    samples after a run long enough to know are a collapse."""
    healthy = Generator(100, 32).apply(weights_init_normal)
    alike = [torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 32, 32)]
    short = [(1.0, 0.5)] * 16
    passes(capsys, graders.test_training_output, short, alike, healthy)
    graders.test_training_output(short, alike, healthy)
    assert "after 16 updates the samples are still alike; train longer before judging" in capsys.readouterr().out
    caught(graders.test_training_output, short + [(1.0, 0.5)] * graders.UPDATES_TO_JUDGE_COLLAPSE, alike, healthy,
           says="G has collapsed")


def test_samples_out_of_range_from_a_generator_without_tanh_are_the_generators_finding(capsys):
    """One bug, one lost grade: a generator without tanh fails test_generator; its samples, stored as they are,
    are not held against the training step too. Samples out of range from a generator with tanh still are."""
    class NoTanh(Generator):
        def forward(self, z):
            return super().forward(z) * 1000  # beyond tanh's range, as a missing tanh would be
    torch.manual_seed(0)
    G = NoTanh(100, 32).apply(weights_init_normal)
    with torch.no_grad():
        samples = [G.eval()(torch.rand(16, 100) * 2 - 1)]
    assert samples[0].abs().max() > 1  # the failure is real, not staged
    passes(capsys, graders.test_training_output, [(1.0, 0.5)], samples, G.train())
    graders.test_training_output([(1.0, 0.5)], samples, G)
    assert "because the generator's own output does" in capsys.readouterr().out
    assert G.training, "asking G must leave its mode alone"
    caught(graders.test_generator, NoTanh, says="tanh")
    with_tanh = Generator(100, 32).apply(weights_init_normal)
    caught(graders.test_training_output, [(1.0, 0.5)], [torch.rand(8, 3, 32, 32) * 3], with_tanh, says="in [-1, 1]")


def test_broken_dataloaders_are_caught():
    images = load_images("synthetic", 32, synthetic_count=64)
    dataset = FaceDataset(images)
    DataLoader = torch.utils.data.DataLoader
    caught(graders.test_dataloader, DataLoader(dataset, batch_size=8), 32, says="shuffle=True")
    caught(graders.test_dataloader, DataLoader(dataset, batch_size=8, shuffle=True), 64, says="(3, 64, 64)")
    signed = torch.utils.data.TensorDataset(images.float() / 127.5 - 1, torch.zeros(64))
    caught(graders.test_dataloader, DataLoader(signed, batch_size=8, shuffle=True), 32, says="values in [0, 1]")
    caught(graders.test_get_dataloader, lambda b, s, d: DataLoader(dataset, batch_size=4, shuffle=True),
           "synthetic", says="batches of 16")
    caught(graders.test_get_dataloader, lambda b, s, d: DataLoader(dataset, batch_size=b, shuffle=True, foo=1),
           "synthetic", says=["get_dataloader(16, 32, 'synthetic') to run", "TypeError"])

    def unwritten(batch_size, image_size, data_dir):
        raise NotImplementedError()
    caught(graders.test_get_dataloader, unwritten, "synthetic", says=["not implemented yet", "write get_dataloader"])
